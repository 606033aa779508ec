"""The searcher tells Optuna the truth (real Optuna study in SQLite, no Ray cluster needed): intermediate
values are the scheduler's metric, the outcome is COMPLETE / PRUNED / FAIL, the best dev WER is kept."""

from __future__ import annotations

import math

import optuna
import pytest
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from tune.experiment import from_dict
from tune.search import OptunaSearcher, SearcherCache, make_scheduler
from tune.trials import TIE_BREAK, with_rank_metric


def _spec(tmp_path, num_trials=3, **scheduler):
    (tmp_path / "s").mkdir(exist_ok=True)  # the sweep folder, made by run_sweep
    return from_dict(dict(name="s", corpus={"path": "x"}, storage_path=str(tmp_path), num_trials=num_trials,
                          config={"train": {"epochs": 6}}, scheduler=scheduler,
                          space={"train.learning_rate": {"type": "loguniform", "low": 1e-4, "high": 1e-2}}))


def _report(searcher, tid, epoch, loss, wer, best, **extra):  # as the trainable reports
    searcher.on_trial_result(tid, with_rank_metric(dict(epoch=epoch, dev_loss=loss, dev_wer=wer, best_dev_wer=best,
                                                        **extra)))


@pytest.mark.parametrize("metric", ["dev_loss", "dev_wer", "dev_wer_then_loss"])
def test_intermediate_values_are_the_scheduler_metric(tmp_path, metric):
    spec = _spec(tmp_path, metric=metric)
    searcher = OptunaSearcher(spec)
    assert searcher.suggest("a") == {"train.learning_rate": 3e-4}  # the seed baseline goes first
    _report(searcher, "a", 1, 9.5, 1.0, 1.0)
    _report(searcher, "a", 2, 7.25, 0.8, 0.8)
    searcher.on_trial_complete("a", with_rank_metric(dict(epoch=3, dev_loss=8.0, dev_wer=0.9, best_dev_wer=0.8)))
    trial = searcher.study.trials[0]  # ^ stopped by ASHA
    loss, wer = {1: 9.5, 2: 7.25, 3: 8.0}, {1: 1.0, 2: 0.8, 3: 0.9}
    expected = {"dev_loss": loss, "dev_wer": wer,
                "dev_wer_then_loss": {e: wer[e] + TIE_BREAK * loss[e] for e in loss}}[metric]
    assert trial.intermediate_values == pytest.approx(expected)
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert trial.user_attrs["best_dev_wer"] == 0.8


def test_outcomes_complete_pruned_fail(tmp_path):
    searcher = OptunaSearcher(_spec(tmp_path))
    for tid in "abc":
        searcher.suggest(tid)
    _report(searcher, "a", 6, 3.0, 0.4, 0.35, finished=1)
    searcher.on_trial_complete("a", dict(epoch=6, dev_loss=3.0, dev_wer=0.4, best_dev_wer=0.35, finished=1))
    searcher.on_trial_complete("b", dict(epoch=2, dev_loss=5.0, dev_wer=1.0, best_dev_wer=1.0))
    searcher.on_trial_complete("c", dict(epoch=1, finished=1, failed_reason="non-finite loss"))
    states = [t.state for t in searcher.study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
                      optuna.trial.TrialState.FAIL]
    assert searcher.study.best_value == 0.35  # the best dev WER over epochs, not the last report
    assert searcher.study.trials[2].user_attrs["fail_reason"] == "non-finite loss"
    assert searcher.suggest("d") is OptunaSearcher.FINISHED  # num_trials reached


def test_a_trial_optuna_already_closed_keeps_its_outcome_when_ray_reruns_it(tmp_path):
    # A driver killed after Optuna was told but before Ray saved its state: on resume Ray runs the trial again
    # (and may fail to restore it); the searcher must neither crash nor overwrite the recorded outcome.
    searcher = OptunaSearcher(_spec(tmp_path))
    searcher.suggest("a")
    _report(searcher, "a", 6, 3.0, 0.4, 0.35, finished=1)
    searcher.on_trial_complete("a", dict(epoch=6, dev_loss=3.0, dev_wer=0.4, best_dev_wer=0.35, finished=1))
    searcher._live["a"] = searcher.study.trials[0]._trial_id  # what the restored searcher state still holds
    _report(searcher, "a", 7, 9.0, 1.0, 0.9)
    searcher.on_trial_complete("a", dict(epoch=0, failed_reason="checkpoint gone"), error=True)
    trial = searcher.study.trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE and trial.value == 0.35
    assert 7 not in trial.intermediate_values and "fail_reason" not in trial.user_attrs
    assert trial.user_attrs["best_dev_wer"] == 0.35 and "a" not in searcher._live


def test_a_result_costs_writes_only_after_the_first_read_and_a_restored_searcher_reads_again(tmp_path):
    # The driver's per-result cost at scale (docs/benchmarks.md, "Sweep at scale"): the searcher reads a live trial
    # from the study once, then keeps its record in step with its own writes.
    import pickle
    searcher = OptunaSearcher(_spec(tmp_path))
    searcher.suggest("a")
    storage, reads = searcher.study._storage, []
    get_trial = storage.get_trial
    storage.get_trial = lambda tid: reads.append(tid) or get_trial(tid)
    for epoch in range(1, 5):
        _report(searcher, "a", epoch, 10.0 - epoch, 1.0 - 0.1 * epoch, 1.0 - 0.1 * epoch)
    assert len(reads) == 1
    storage.get_trial = get_trial
    restored = pickle.loads(pickle.dumps(searcher))  # Ray's experiment state; the driver then resumes
    restored.study._storage.get_trial = lambda tid: reads.append(tid) or get_trial(tid)
    _report(restored, "a", 4, 6.0, 0.6, 0.6)  # a resumed trial re-reports its last epoch: stored once, kept
    _report(restored, "a", 5, 5.5, 0.5, 0.5)
    assert len(reads) == 2
    trial = optuna.load_study(study_name=searcher.study.study_name, storage=searcher.storage).trials[0]
    assert trial.intermediate_values == pytest.approx({1: 9.0, 2: 8.0, 3: 7.0, 4: 6.0, 5: 5.5})
    assert trial.user_attrs["best_dev_wer"] == 0.5 and trial.user_attrs["best_epoch"] == 5


def test_a_results_writes_are_one_commit(tmp_path):
    """An epoch's intermediate value and its new best (value and epoch) go into the study in one transaction, not
    one commit each; a re-reported epoch with nothing new commits nothing."""
    import sqlalchemy
    searcher = OptunaSearcher(_spec(tmp_path))
    searcher.suggest("a")
    _report(searcher, "a", 1, 9.0, 0.8, 0.8)  # (the first result also reads the trial once)
    commits: list[int] = []
    sqlalchemy.event.listen(searcher.study._storage._backend.engine, "commit", lambda conn: commits.append(1))
    _report(searcher, "a", 2, 8.0, 0.9, 0.8)  # no new best: the value alone
    _report(searcher, "a", 3, 7.0, 0.5, 0.5)  # the value, the best and its epoch
    assert len(commits) == 2
    _report(searcher, "a", 3, 7.0, 0.5, 0.5)  # as a resumed trial re-reports its last epoch
    assert len(commits) == 2
    trial = optuna.load_study(study_name="s", storage=searcher.storage).trials[0]
    assert trial.intermediate_values == pytest.approx({1: 9.0, 2: 8.0, 3: 7.0})
    assert (trial.user_attrs["best_dev_wer"], trial.user_attrs["best_epoch"]) == (0.5, 3)


def test_a_trial_told_since_the_searcher_read_it_is_left_as_it_was_told(tmp_path):
    # e.g. ASHA's lost decision taken again on restore (ResumableASHA.rebuild tells PRUNED): the record the
    # searcher holds says RUNNING, the study says PRUNED; the study wins and nothing raises
    searcher = OptunaSearcher(_spec(tmp_path))
    searcher.suggest("a")
    _report(searcher, "a", 1, 9.0, 1.0, 1.0)
    other = optuna.load_study(study_name=searcher.study.study_name, storage=searcher.storage)
    other.tell(0, state=optuna.trial.TrialState.PRUNED)
    _report(searcher, "a", 2, 8.0, 0.9, 0.9)
    _report(searcher, "a", 3, 7.0, 0.8, 0.8)
    trial = other.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED and trial.intermediate_values == {1: 9.0}
    assert trial.user_attrs["best_dev_wer"] == 1.0


def test_make_scheduler_ranks_by_the_configured_metric(tmp_path):
    asha = make_scheduler(_spec(tmp_path, grace_period=2, reduction_factor=2))
    assert isinstance(asha, ASHAScheduler)
    assert asha.metric == "dev_loss" and asha._max_t == 6  # the default
    assert [milestone for milestone, _ in asha._brackets[0]._rungs] == [4, 2]  # grace 2, then x2 below max 6
    assert make_scheduler(_spec(tmp_path, metric="dev_wer_then_loss")).metric == "dev_wer_then_loss"
    assert isinstance(make_scheduler(_spec(tmp_path, type="none")), FIFOScheduler)


def test_rank_metric_breaks_wer_ties_by_loss_and_keeps_wer_order():
    plateau = [with_rank_metric(dict(dev_wer=1.0, dev_loss=v))["dev_wer_then_loss"] for v in (9.0, 7.0)]
    assert plateau[1] < plateau[0]  # all blanks: the lower loss ranks first
    one_word = 1 / 500  # a dev set of 500 words
    better_wer = with_rank_metric(dict(dev_wer=0.5, dev_loss=15.0))["dev_wer_then_loss"]
    worse_wer = with_rank_metric(dict(dev_wer=0.5 + one_word, dev_loss=1.0))["dev_wer_then_loss"]
    assert better_wer < worse_wer  # loss never outranks a WER difference of one word
    assert "dev_wer_then_loss" not in with_rank_metric(dict(dev_wer=1.0, dev_loss=float("nan")))


def test_tpe_is_independent_unless_asked(tmp_path):
    from tune.search import make_sampler
    assert make_sampler(_spec(tmp_path))._multivariate is False  # Optuna 5's own default would be None -> True
    spec = from_dict(dict(name="s", corpus={"path": "x"}, storage_path=str(tmp_path), searcher={"multivariate": True},
                          space={"model.dropout": {"type": "uniform", "low": 0.0, "high": 0.5}}))
    assert make_sampler(spec)._multivariate is True


def test_a_study_on_another_machine_is_named_not_created(tmp_path):
    from tune.search import study_not_here
    spec = from_dict(dict(name="far", corpus={"path": "x"}, storage_path="s3://bucket/sweeps",
                          local_path=str(tmp_path / "elsewhere"),
                          space={"model.dropout": {"type": "uniform", "low": 0.0, "high": 0.5}}))
    why = study_not_here(spec)
    assert why and "far" in why and "searcher.storage" in why
    assert not (tmp_path / "elsewhere").exists()  # nothing was created on the way
    (tmp_path / "elsewhere" / "far").mkdir(parents=True)
    OptunaSearcher(spec).study  # the driver creates it
    assert study_not_here(spec) is None


def test_a_trial_asked_after_the_last_state_save_is_rerun_after_resume(tmp_path):
    # The driver saved its state with trial "a" live, then asked Optuna for "b" and died: Ray restores only
    # "a". "b" must not stay RUNNING forever nor use up the budget: the next new Ray trial runs its config.
    spec = _spec(tmp_path)
    first = OptunaSearcher(spec)
    first.suggest("a")
    first.save(str(tmp_path / "searcher.json"))  # Ray's last experiment-state save
    lost = first.suggest("b")
    restored = OptunaSearcher(spec)
    restored.restore(str(tmp_path / "searcher.json"))
    assert restored.suggest("a") == first.study.trials[0].params  # the restored trial keeps its parameters
    assert restored.suggest("c") == lost  # the orphan's configuration, same Optuna trial
    assert len(restored.study.trials) == 2
    assert restored.study.trials[1].user_attrs["ray_trial_id"] == "c"
    for tid in "ac":
        restored.on_trial_complete(tid, dict(epoch=6, dev_loss=3.0, dev_wer=0.5, best_dev_wer=0.5, finished=1))
    restored.suggest("d")
    assert [t.state for t in restored.study.trials] == [optuna.trial.TrialState.COMPLETE] * 2 + [
        optuna.trial.TrialState.RUNNING]
    assert restored.suggest("e") is OptunaSearcher.FINISHED  # num_trials = 3: a, b-as-c, d


def _qmc_spec(tmp_path, name):
    (tmp_path / name).mkdir(exist_ok=True)
    return from_dict(dict(name=name, corpus={"path": "x"}, storage_path=str(tmp_path), num_trials=6,
                          config={"train": {"epochs": 6}}, baseline_first=False, searcher={"algorithm": "qmc"},
                          space={"train.learning_rate": {"type": "loguniform", "low": 1e-4, "high": 1e-2},
                                 "model.dropout": {"type": "uniform", "low": 0.0, "high": 0.3}}))


def _finish(searcher, rid):
    searcher.on_trial_complete(rid, dict(epoch=6, dev_loss=3.0, dev_wer=0.5, best_dev_wer=0.5, finished=1))


@pytest.mark.parametrize("killed_in", ["sampling", "storing"])
def test_an_ask_the_kill_interrupted_is_finished_with_the_parameters_it_would_have_had(tmp_path, monkeypatch,
                                                                                       killed_in):
    """The driver died inside Optuna's ask: the trial exists, RUNNING, with no Ray trial id and no parameters,
    and QMC's position in its sequence may already have moved on ("storing": killed after the draw, before the
    parameters were stored). The resumed searcher hands that trial to the next Ray trial with the parameters an
    uninterrupted sweep gave it, and every later trial gets its own as well (no shift along the sequence)."""
    plain = OptunaSearcher(_qmc_spec(tmp_path, "plain"))
    expected = []
    for rid in "abcde":
        expected.append(plain.suggest(rid))
        _finish(plain, rid)

    spec = _qmc_spec(tmp_path, "killed")
    first = OptunaSearcher(spec)
    for rid in "abc":
        assert first.suggest(rid) == expected["abc".index(rid)]
        _finish(first, rid)
    first.save(str(tmp_path / "searcher.json"))
    storage = type(first.study._storage)
    where = {"sampling": (optuna.samplers.QMCSampler, "sample_relative"), "storing": (storage, "set_trial_param")}

    def killed(*args, **kwargs):
        raise SystemExit("the driver is SIGKILLed here")
    with monkeypatch.context() as m:
        m.setattr(*where[killed_in], killed)
        with pytest.raises(SystemExit):
            first.suggest("d")
    (orphan,) = first.study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    assert orphan.params == {} and "ray_trial_id" not in orphan.user_attrs

    restored = OptunaSearcher(spec)
    restored.restore(str(tmp_path / "searcher.json"))
    assert restored.suggest("f") == expected[3]
    assert restored.study.trials[3].user_attrs["ray_trial_id"] == "f" and len(restored.study.trials) == 4
    _finish(restored, "f")
    assert restored.suggest("g") == expected[4]


@pytest.mark.parametrize("algorithm", ["tpe", "random"])
def test_a_restarted_driver_draws_what_the_uninterrupted_one_would_have(tmp_path, algorithm):
    """The lifecycle issue, item 3: a resumed sweep's sampler starts with a new generator. Seeded once per sweep,
    it replayed its first draws and gave the next trial an earlier trial's parameters. Seeded per trial number, a
    trial's draw depends on the study's trials so far only: the resumed sweep proposes what the uninterrupted one
    did, past TPE's random startup trials too."""
    def spec(name):
        (tmp_path / name).mkdir(exist_ok=True)
        return from_dict(dict(name=name, corpus={"path": "x"}, storage_path=str(tmp_path), num_trials=8,
                              config={"train": {"epochs": 6}}, baseline_first=False,
                              searcher={"algorithm": algorithm, "seed": 0, "n_startup_trials": 3},
                              space={"train.learning_rate": {"type": "loguniform", "low": 1e-4, "high": 1e-2},
                                     "model.dropout": {"type": "uniform", "low": 0.0, "high": 0.3}}))

    def run(searcher, rid):  # a deterministic outcome of the parameters, as the table trials give
        params = searcher.suggest(rid)
        wer = abs(math.log10(params["train.learning_rate"]) + 3) + params["model.dropout"]
        searcher.on_trial_complete(rid, dict(epoch=6, dev_loss=wer, dev_wer=wer, best_dev_wer=wer, finished=1))
        return params

    plain = OptunaSearcher(spec("plain"))
    expected = [run(plain, f"p{i}") for i in range(7)]
    first = OptunaSearcher(spec("restarted"))
    got = [run(first, f"a{i}") for i in range(2)]
    first.save(str(tmp_path / "searcher.json"))
    for restart in range(2):  # two restarts: inside TPE's startup trials, then past them
        again = OptunaSearcher(spec("restarted"))
        again.restore(str(tmp_path / "searcher.json"))
        got += [run(again, f"b{restart}{i}") for i in range(2 + restart)]
    assert got == expected
    assert len({tuple(p.values()) for p in got}) == len(got)  # no trial repeats an earlier one


def test_without_a_checkpoint_every_running_trial_is_adopted(tmp_path):
    spec = _spec(tmp_path)
    first = OptunaSearcher(spec)
    first.suggest("a")
    again = OptunaSearcher(spec)  # no Ray checkpoint to compare with: every RUNNING trial keeps its Ray trial
    assert len(again.study.trials) == 1
    assert again.suggest("a") == first.study.trials[0].params
    assert again.suggest("b") != first.study.trials[0].params and len(again.study.trials) == 2


def test_asha_rebuilt_from_the_study_holds_the_records_a_live_one_made(tmp_path):
    """A restored sweep's ASHA starts with empty rungs (Ray restores it as built); ResumableASHA refills them from
    the study's intermediate values, so its next decision is the one the live scheduler would have made."""
    from ray.tune.experiment import Trial
    spec = _spec(tmp_path, grace_period=1, reduction_factor=2)
    searcher, live = OptunaSearcher(spec), make_scheduler(spec)
    losses = {"a": [9.0, 8.0, 7.0, 6.0, 5.5, 5.0], "b": [9.5, 8.5], "c": [8.5, 7.5, 6.5, 6.4]}
    trials = {}
    for rid, curve in losses.items():
        searcher.suggest(rid)
        trials[rid] = Trial("t", trial_id=rid, stub=True)
        live.on_trial_add(None, trials[rid])
        for epoch, loss in enumerate(curve, 1):
            result = dict(training_iteration=epoch, epoch=epoch, dev_loss=loss, dev_wer=0.5, best_dev_wer=0.5)
            live.on_trial_result(None, trials[rid], result)
            searcher.on_trial_result(rid, result)
    restored = make_scheduler(spec)  # the scheduler Tuner.restore brings back: built, never fed
    assert all(not recorded for _, recorded in restored._brackets[0]._rungs)
    restored.on_trial_add(None, Trial("t", trial_id="d", stub=True))  # the first trial of the new driver
    assert restored._brackets[0]._rungs == live._brackets[0]._rungs
    assert [len(r) for _, r in live._brackets[0]._rungs] == [2, 3, 3]  # rungs 4, 2, 1: a and c reached 4
    # the same next decision: a fourth trial worse than the rung-1 cutoff is stopped by both
    for scheduler in (live, restored):
        new = Trial("t", trial_id="e", stub=True)
        scheduler.on_trial_add(None, new)
        assert scheduler.on_trial_result(None, new, dict(training_iteration=1, dev_loss=9.9)) == "STOP"


def test_asha_takes_again_a_rung_decision_the_kill_lost(tmp_path):
    """The driver died between ASHA's decision at a rung and Optuna's record of it: the trial is RUNNING with its
    last value on the rung. The rebuilt scheduler decides again, against the rung as the other trials left it: a
    trial below the cutoff is told PRUNED (and counted done when Ray brings it back), one above it goes on."""
    from ray.tune.experiment import Trial
    spec = _spec(tmp_path, num_trials=4, grace_period=1, reduction_factor=2)
    searcher = OptunaSearcher(spec)
    curves = {"a": [5.0, 4.0, 3.0, 2.5, 2.0, 1.5], "b": [6.0, 5.0, 4.0, 3.5, 3.0, 2.8], "c": [9.0], "d": [4.5]}
    for rid, curve in curves.items():
        searcher.suggest(rid)
        for epoch, loss in enumerate(curve, 1):
            searcher.on_trial_result(rid, dict(epoch=epoch, dev_loss=loss, dev_wer=0.5, best_dev_wer=0.5))
        if rid in "ab":
            _finish(searcher, rid)
    restored = make_scheduler(spec)
    restored.on_trial_add(None, Trial("t", trial_id="c", stub=True))
    states = {t.user_attrs["ray_trial_id"]: t.state for t in searcher.study.get_trials()}
    # rung 1 held a (-5.0) and b (-6.0): cutoff -5.5, c (-9.0) below it; then with c: -6.0, d (-4.5) above
    assert states["c"] == optuna.trial.TrialState.PRUNED
    assert states["d"] == optuna.trial.TrialState.RUNNING
    rung1 = dict(restored._brackets[0]._rungs)[1]
    assert rung1 == {"a": -5.0, "b": -6.0, "c": -9.0, "d": -4.5}


def test_storage_urls_are_shown_without_their_password():
    from tune.search import shown
    assert shown("postgresql://slr:s3cret@db.internal:5432/optuna") == "postgresql://slr:***@db.internal:5432/optuna"
    assert shown("sqlite:////tmp/x/optuna.db") == "sqlite:////tmp/x/optuna.db"
    assert shown("not a url") == "not a url"


def _conditional_spec(tmp_path, num_trials=12, **when):
    (tmp_path / "c").mkdir(exist_ok=True)
    return from_dict(dict(
        name="c", corpus={"path": "x"}, storage_path=str(tmp_path), num_trials=num_trials, baseline_first=False,
        config={"train": {"epochs": 6}}, searcher={"algorithm": "random", "seed": 3},
        space={"model.aux_ctc_weight": {"type": "choice", "values": [0.0, 1.0]},
               "train.self_distill_weight": {"type": "uniform", "low": 1.0, "high": 25.0,
                                             "when": when or {"model.aux_ctc_weight": 1.0}}}))


def test_a_conditional_parameter_is_drawn_only_under_its_condition(tmp_path):
    from tune.trainable import trial_config
    spec = _conditional_spec(tmp_path)
    searcher = OptunaSearcher(spec)
    drawn = [searcher.suggest(f"t{i}") for i in range(12)]
    for params in drawn:
        assert ("train.self_distill_weight" in params) == (params["model.aux_ctc_weight"] == 1.0), params
        cfg = trial_config(spec.base_config().to_dict(), params, 6)  # both arms build a valid config
        assert cfg.train.self_distill_weight == params.get("train.self_distill_weight", 0.0)
    assert {p["model.aux_ctc_weight"] for p in drawn} == {0.0, 1.0}  # both arms were drawn
    study = optuna.load_study(study_name="c", storage=spec.optuna_storage)
    assert [set(t.params) for t in study.trials] == [set(p) for p in drawn]  # Optuna holds what was drawn
    # a summary row of the other arm (None: not drawn) keeps the base config's value
    assert trial_config(spec.base_config().to_dict(), {"model.aux_ctc_weight": 0.0,
                                                       "train.self_distill_weight": None}, 6).train.self_distill_weight == 0.0


@pytest.mark.parametrize("when, key", [
    ({"model.dropout": 0.1}, "space.train.self_distill_weight.when"),  # not a searched key
    ({"model.aux_ctc_weight": 0.5}, "space.train.self_distill_weight.when.model.aux_ctc_weight"),  # not drawable
])
def test_a_condition_names_an_earlier_key_and_a_value_it_can_draw(tmp_path, when, key):
    from slr.config import ConfigError
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        _conditional_spec(tmp_path, **when)


def test_a_conditional_value_is_validated_with_its_condition(tmp_path):
    # self-distillation needs the auxiliary head: unconditioned, every draw of it would be an invalid config
    from slr.config import ConfigError
    (tmp_path / "u").mkdir()
    with pytest.raises(ConfigError, match=r"space\.train\.self_distill_weight"):
        from_dict(dict(name="u", corpus={"path": "x"}, storage_path=str(tmp_path), num_trials=2,
                       space={"train.self_distill_weight": {"type": "uniform", "low": 1.0, "high": 25.0}}))
    assert _conditional_spec(tmp_path).space["train.self_distill_weight"].when == {"model.aux_ctc_weight": 1.0}


def test_a_sweep_can_search_the_architecture_with_each_arms_own_keys(tmp_path):
    """model.arch searched: model.vac.* drawn only for vac, the student's auxiliary head only for the student
    (with vac it is refused), and every draw builds the model it names."""
    from slr.config import ConfigError
    from slr.features import FeaturePipeline
    from slr.model import Student, VacBaseline, build_model
    from tune.trainable import trial_config
    (tmp_path / "a").mkdir()
    raw = dict(name="a", corpus={"path": "x"}, storage_path=str(tmp_path), num_trials=16, baseline_first=False,
               config={"train": {"epochs": 4}}, searcher={"algorithm": "random", "seed": 1},
               space={"model.arch": {"type": "choice", "values": ["student", "vac"]},
                      "model.vac.width": {"type": "choice", "values": [32, 64], "when": {"model.arch": "vac"}},
                      "model.aux_ctc_weight": {"type": "choice", "values": [0.0, 1.0],
                                               "when": {"model.arch": "student"}}})
    spec = from_dict(raw)
    searcher = OptunaSearcher(spec)
    drawn = [searcher.suggest(f"t{i}") for i in range(16)]
    assert {p["model.arch"] for p in drawn} == {"student", "vac"}
    for params in drawn:
        vac = params["model.arch"] == "vac"
        assert ("model.vac.width" in params) == vac and ("model.aux_ctc_weight" in params) == (not vac), params
        cfg = trial_config(spec.base_config().to_dict(), params, 4)
        model = build_model(cfg.model, FeaturePipeline(cfg.features).spans, 5)
        assert isinstance(model, VacBaseline if vac else Student)
        if vac:
            assert model.stages[0][0].out_channels == params["model.vac.width"]
    # unconditioned, the auxiliary head's draws would meet the vac arm: refused before Ray starts, naming it
    del raw["space"]["model.aux_ctc_weight"]["when"]
    with pytest.raises(ConfigError, match=r"model\.arch.*vac.*model\.aux_ctc_weight=1\.0"):
        from_dict(raw)


def _mo_spec(tmp_path, num_trials=8, algorithm="tpe", **scheduler):
    (tmp_path / "mo").mkdir(exist_ok=True)
    return from_dict(dict(name="mo", corpus={"path": "x"}, storage_path=str(tmp_path), num_trials=num_trials,
                          config={"train": {"epochs": 6}}, baseline_first=False,
                          searcher={"algorithm": algorithm, "n_startup_trials": 2, "population_size": 2},
                          scheduler={"type": "mo-asha", "grace_period": 1, "reduction_factor": 2, **scheduler},
                          objectives=[{"metric": "dev_wer", "mode": "min"}, {"metric": "params", "mode": "min"}],
                          space={"train.learning_rate": {"type": "loguniform", "low": 1e-4, "high": 1e-2},
                                 "model.hidden_dim": {"type": "choice", "values": [16, 32, 64]}}))


def _mo_report(searcher, rid, epoch, loss, params, **extra):
    result = dict(epoch=epoch, training_iteration=epoch, dev_loss=loss, dev_wer=loss / 10, best_dev_wer=loss / 10,
                  cost_params=params, **extra)
    searcher.on_trial_result(rid, result)
    return result


@pytest.mark.parametrize("algorithm", ["tpe", "nsga2", "random"])
def test_a_multi_objective_study_is_told_pruned_and_complete_trials_and_keeps_asking(tmp_path, algorithm):
    """Issue 20, item 2: the study has one direction per objective; a completed trial is told (best dev WER, its
    cost), a stopped one PRUNED (its per-epoch values kept for the scheduler though Optuna refuses Trial.report
    in such a study), a failed one FAIL; the multi-objective sampler goes on asking with all three in the study."""
    from tune.search import intermediate
    spec = _mo_spec(tmp_path, num_trials=9, algorithm=algorithm)
    searcher = OptunaSearcher(spec)
    for k in range(8):
        rid = f"t{k}"
        assert searcher.suggest(rid) is not OptunaSearcher.FINISHED
        params = 1000.0 * (k + 1)
        if k % 3 == 0:  # stopped by the scheduler at epoch 2
            _mo_report(searcher, rid, 1, 9.0 - k / 10, params)
            searcher.on_trial_complete(rid, _mo_report(searcher, rid, 2, 8.0 - k / 10, params))
        elif k % 3 == 1:
            for epoch in range(1, 7):
                last = _mo_report(searcher, rid, epoch, 7.0 - epoch / 2 - k / 10, params, finished=int(epoch == 6))
            searcher.on_trial_complete(rid, last)
        else:
            searcher.on_trial_complete(rid, dict(epoch=1, finished=1, failed_reason="non-finite loss"))
    study = searcher.study
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"] and study.metric_names == ["dev_wer", "params"]
    trials = study.trials
    assert [t.state.name for t in trials] == ["PRUNED", "COMPLETE", "FAIL"] * 2 + ["PRUNED", "COMPLETE"]
    assert trials[1].values == pytest.approx([0.4 - 0.01, 2000.0])  # best dev WER at epoch 6, its cost
    assert intermediate(trials[0]) == {1: 9.0, 2: 8.0} and not trials[0].intermediate_values
    assert searcher.suggest("t8") is not OptunaSearcher.FINISHED  # asks with pruned and failed trials present
    assert {t.number for t in study.best_trials} <= {1, 4, 7}


def test_mo_asha_lets_a_cheap_trial_with_a_worse_loss_go_on_where_asha_stops_it(tmp_path):
    """Issue 20, item 3: at a rung, MO-ASHA ranks (scheduler metric, cost) by Pareto fronts: a trial worse in loss
    but cheaper than every trial before it is on the rung's front and goes on; ASHA on the loss alone stops it."""
    from ray.tune.experiment import Trial
    from tune.search import ResumableMOASHA
    mo = make_scheduler(_mo_spec(tmp_path))
    asha = make_scheduler(_spec(tmp_path, grace_period=1, reduction_factor=2))
    assert isinstance(mo, ResumableMOASHA) and not isinstance(asha, ResumableMOASHA)
    decisions = {}
    for name, scheduler in (("mo", mo), ("asha", asha)):
        for rid, loss, params in (("big1", 5.0, 9000.0), ("big2", 5.5, 8000.0), ("small", 7.0, 1000.0)):
            trial = Trial("t", trial_id=rid, stub=True)
            scheduler._rebuilt = True  # no study to rebuild from in this test
            scheduler.on_trial_add(None, trial)
            result = dict(training_iteration=1, dev_loss=loss, cost_params=params)
            decisions[name, rid] = scheduler.on_trial_result(None, trial, result)
    assert decisions["asha", "small"] == "STOP" and decisions["mo", "small"] == "CONTINUE"
    dominated = Trial("t", trial_id="worse", stub=True)  # worse than big2 on both: stopped by both
    for scheduler in (mo, asha):
        scheduler.on_trial_add(None, dominated)
        assert scheduler.on_trial_result(None, dominated, dict(training_iteration=1, dev_loss=6.0,
                                                               cost_params=8500.0)) == "STOP"


def test_mo_asha_rebuilt_from_the_study_holds_the_records_a_live_one_made(tmp_path):
    """Issue 20, item 3 (resume): a restored sweep's MO-ASHA refills its rungs with the same (metric, cost) points
    from the study's per-epoch values and cost attributes, and takes the same next decision; a decision the kill
    lost (a RUNNING trial whose last value sits on a rung) is taken again."""
    from ray.tune.experiment import Trial
    spec = _mo_spec(tmp_path)
    searcher, live = OptunaSearcher(spec), make_scheduler(spec)
    runs = {"a": ([9.0, 8.0, 7.0, 6.0, 5.5, 5.0], 9000.0), "b": ([9.5, 8.5], 8000.0),
            "c": ([8.5, 7.5, 6.5, 6.4], 500.0), "d": ([9.9], 9900.0)}
    for rid, (curve, params) in runs.items():
        searcher.suggest(rid)
        trial = Trial("t", trial_id=rid, stub=True)
        live.on_trial_add(None, trial)
        for epoch, loss in enumerate(curve, 1):
            result = _mo_report(searcher, rid, epoch, loss, params)
            action = live.on_trial_result(None, trial, result)
        if rid != "d":
            searcher.on_trial_complete(rid, result)  # (stopped or not: its outcome is told)
    assert action == "STOP"  # d: worse and dearer than a, b and c at rung 1
    restored = make_scheduler(spec)
    assert all(not recorded for _, recorded in restored._brackets[0]._rungs)
    restored.on_trial_add(None, Trial("t", trial_id="e", stub=True))
    assert restored._brackets[0]._rungs == live._brackets[0]._rungs
    assert dict(restored._brackets[0]._rungs)[1]["c"] == (8.5, 500.0)
    states = {t.user_attrs["ray_trial_id"]: t.state.name for t in searcher.study.get_trials()}
    assert states["d"] == "PRUNED"  # its decision was lost with the driver (told nothing): taken again
    for scheduler in (live, restored):
        new = Trial("t", trial_id="f", stub=True)
        scheduler.on_trial_add(None, new)
        assert scheduler.on_trial_result(None, new, dict(training_iteration=1, dev_loss=9.95,
                                                         cost_params=9950.0)) == "STOP"
        new = Trial("t", trial_id="g", stub=True)
        scheduler.on_trial_add(None, new)
        assert scheduler.on_trial_result(None, new, dict(training_iteration=1, dev_loss=9.95,
                                                         cost_params=10.0)) == "CONTINUE"  # the cheapest yet


def test_mo_asha_and_nsga2_are_validated(tmp_path):
    from slr.config import ConfigError
    with pytest.raises(ConfigError, match="scheduler.type"):
        _spec(tmp_path, type="mo-asha")  # no costs to rank by
    with pytest.raises(ConfigError, match="searcher.population_size"):
        from_dict(dict(name="s", corpus={"path": "x"}, storage_path=str(tmp_path),
                       searcher={"algorithm": "nsga2", "population_size": 1}))
    assert make_scheduler(_mo_spec(tmp_path)).costs == [("params", "min")]


def test_a_single_objective_study_is_not_reopened_as_a_multi_objective_one(tmp_path):
    from slr.config import ConfigError
    from tune.search import open_study
    single = _spec(tmp_path)
    open_study(single)
    mo = _mo_spec(tmp_path)
    mo.name = "s"
    with pytest.raises(ConfigError, match="objectives.*another name"):
        open_study(mo, single.optuna_storage)


@pytest.mark.parametrize("multivariate, objectives", [(False, 1), (True, 1), (False, 2)])
def test_tpe_reading_the_study_once_per_trial_draws_what_optunas_tpe_draws(tmp_path, multivariate, objectives):
    """OneReadTPE (one read of the study and one split into good and bad trials per trial, instead of one of each
    per parameter: two thirds of an ask at 1,000 trials) draws exactly Optuna's TPE's parameters, with finished,
    pruned and running trials in the study, in a single- and in a two-objective study."""
    from tune.search import OneReadTPE
    space = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
             "blocks": optuna.distributions.IntDistribution(2, 8),
             "layers": optuna.distributions.CategoricalDistribution([1, 2]),
             "dropout": optuna.distributions.FloatDistribution(0.0, 0.5)}
    draws = {}
    for name, sampler in (("optuna", optuna.samplers.TPESampler), ("ours", OneReadTPE)):
        study = optuna.create_study(storage=f"sqlite:///{tmp_path / name}.db", directions=["minimize"] * objectives,
                                    sampler=optuna.samplers.RandomSampler(seed=0))

        def values(t):  # two objectives in conflict: dropout against blocks
            wer = t.params["dropout"] + (t.params["blocks"] - 5) ** 2 / 10
            return wer if objectives == 1 else [wer, 1.0 / t.params["blocks"]]

        for k in range(30):  # the same history in both studies
            t = study.ask(space)
            if k % 5 == 4:
                continue  # left RUNNING: constant_liar counts it
            if k % 3 == 0:
                if objectives == 1:  # Optuna refuses report in a multi-objective study
                    t.report(t.params["dropout"] + 1.0, 1)
                study.tell(t, state=optuna.trial.TrialState.PRUNED)
            else:
                study.tell(t, values(t))
        drawn = []
        study.sampler = sampler(seed=1, n_startup_trials=4, multivariate=multivariate)  # one sampler, five trials
        for k in range(5):
            t = study.ask(space)
            drawn.append(t.params)
            study.tell(t, values(t))
        draws[name] = drawn
    assert draws["ours"] == draws["optuna"]


def test_an_ask_reads_the_study_once_and_draws_what_optunas_own_ask_draws(tmp_path):
    """The searcher's ask, with trials running (each read of the study reads every running trial from storage
    again: three reads per ask cost a 128-at-once sweep's driver 235 ms an ask), reads the study once, and draws
    exactly what Optuna's own ask with its TPE (seeded per trial number, as the searcher seeds it) draws on the
    same history: the queued baseline first, then TPE past its startup trials, running trials counted as liars."""
    from optuna.storages import _cached_storage

    from tune.search import trial_seed
    (tmp_path / "s").mkdir()
    spec = from_dict(dict(name="s", corpus={"path": "x"}, storage_path=str(tmp_path), num_trials=40,
                          config={"train": {"epochs": 6, "learning_rate": 1e-3}, "model": {"dropout": 0.1}},
                          searcher={"algorithm": "tpe", "seed": 3, "n_startup_trials": 4},
                          space={"train.learning_rate": {"type": "loguniform", "low": 1e-4, "high": 1e-2},
                                 "model.dropout": {"type": "uniform", "low": 0.0, "high": 0.3},
                                 "model.num_blocks": {"type": "int", "low": 2, "high": 8}}))
    searcher = OptunaSearcher(spec)
    reference = optuna.create_study(storage=f"sqlite:///{tmp_path / 'ref.db'}")
    reference.enqueue_trial(spec.baseline())
    reads = []
    real_read = _cached_storage._CachedStorage.get_all_trials

    def counted(self, *a, **kw):
        reads.append(1)
        return real_read(self, *a, **kw)

    def wer(params):
        return abs(math.log10(params["train.learning_rate"]) + 3) + params["model.dropout"]

    running = []  # (searcher's id, reference trial): every third trial stays running for a while
    for k in range(16):
        reference.sampler = optuna.samplers.TPESampler(seed=trial_seed(3, k), n_startup_trials=4,
                                                       multivariate=False)  # the sweep's default
        ref = reference.ask()
        expected = {name: ref._suggest(name, dist) for name, dist in searcher.dists.items()}
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(_cached_storage._CachedStorage, "get_all_trials", counted)
            reads.clear()
            got = searcher.suggest(f"t{k}")
        assert got == expected, k
        if k:  # the first ask pops the queued baseline: a second read, once
            assert len(reads) == 1, (k, len(reads))
        running.append((f"t{k}", ref))
        for rid, r in running[:-1 if k % 3 == 0 else None]:
            searcher.on_trial_complete(rid, dict(epoch=6, dev_loss=wer(r.params), dev_wer=wer(r.params),
                                                 best_dev_wer=wer(r.params), finished=1))
            reference.tell(r, wer(r.params))
        running = running[-1:] if k % 3 == 0 else []
    assert len({tuple(p.params.values()) for p in reference.trials}) == 16


def test_a_sqlite_study_commits_in_write_ahead_log_mode_without_waiting_for_the_disk(tmp_path):
    """The driver's SQLite study: WAL journal (kept in the file, so other readers use it too) and synchronous
    NORMAL on the driver's connections: a commit does not wait for an fsync behind the trials' disk writes."""
    import sqlite3
    spec = _spec(tmp_path)
    searcher = OptunaSearcher(spec)
    searcher.suggest("a")
    _report(searcher, "a", 1, 2.0, 0.5, 0.5)
    with sqlite3.connect(tmp_path / "s" / "optuna.db") as con:  # another reader, as `slr sweep status`
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("SELECT COUNT(*) FROM trial_intermediate_values").fetchone()[0] == 1
    with searcher.study._storage._backend.engine.connect() as con:
        assert con.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL (FULL is 2)
    assert optuna.load_study(study_name="s", storage=spec.optuna_storage).trials[0].intermediate_values == {1: 2.0}


def test_parameter_importance_of_a_multi_objective_sweep_is_for_dev_wer(tmp_path):
    """The report's importance reads each completed trial's dev WER among its values (a multi-objective trial has no
    single value: seen failing in CI once the sweep had two completed trials with different WERs)."""
    from tune.report import importance
    spec = _mo_spec(tmp_path, num_trials=6, algorithm="random")
    searcher = OptunaSearcher(spec)
    for k in range(6):
        rid = f"t{k}"
        params = searcher.suggest(rid)
        wer = 0.2 + 0.5 * (params["train.learning_rate"] > 1e-3)  # the learning rate decides dev WER
        searcher.on_trial_complete(rid, dict(epoch=6, dev_loss=1.0, dev_wer=wer, best_dev_wer=wer, finished=1,
                                             cost_params=1000.0 * (k + 1)))
    imp = importance(spec)
    assert isinstance(imp, dict) and set(imp) == {"train.learning_rate", "model.hidden_dim"}, imp


def test_the_searchers_cache_reads_what_optuna_reads_and_only_the_trials_that_changed(tmp_path):
    """SearcherCache against a fresh read by Optuna's own cache, through asks, reports, a waiting trial, and another
    writer (the scheduler's restore tells trials through its own study object); and how many trials each read of
    the study takes from the database in full."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    cache = SearcherCache(optuna.storages.RDBStorage(url))
    study = optuna.create_study(study_name="s", storage=cache)
    other = optuna.load_study(study_name="s", storage=url)  # another writer
    read_in_full: list[int] = []
    real = cache._backend._get_trials

    def spy(*a, **kw):  # noqa: ANN002, ANN003, ANN202
        trials = real(*a, **kw)
        read_in_full.append(len(trials))
        return trials
    cache._backend._get_trials = spy

    def read() -> list[tuple]:
        seen = [(t.number, t.state, t.params, t.values, t.intermediate_values, t.user_attrs)
                for t in study._get_trials(deepcopy=False, use_cache=False)]
        assert seen == [(t.number, t.state, t.params, t.values, t.intermediate_values, t.user_attrs)
                        for t in optuna.load_study(study_name="s", storage=url).get_trials(deepcopy=False)]
        return seen

    x = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}
    study.enqueue_trial({"x": 0.5})
    asked = [study.ask(x) for _ in range(4)]  # the first takes the waiting trial
    assert [t.params for t in asked][0] == {"x": 0.5}
    read()
    read_in_full.clear()
    assert len(read()) == 4 and read_in_full == [0]  # nothing changed: no trial read in full

    asked[1].report(0.3, step=1)
    asked[3].set_user_attr("best", 0.3)
    read_in_full.clear()
    read()
    assert read_in_full == [2]  # the two written

    other.tell(asked[2].number, state=optuna.trial.TrialState.PRUNED)  # a state changed by another writer
    other.enqueue_trial({"x": 0.1})  # a new trial from another writer
    read_in_full.clear()
    trials = read()
    assert read_in_full == [2] and trials[2][1] == optuna.trial.TrialState.PRUNED
    assert trials[4][1] == optuna.trial.TrialState.WAITING
    study.tell(asked[0], 0.2)
    study.ask(x)  # takes the waiting trial (Optuna's ask reads the study too, between its writes)
    assert [t[1].name for t in read()] == ["COMPLETE", "RUNNING", "PRUNED", "RUNNING", "RUNNING"]
