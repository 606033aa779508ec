"""Ray Tune driver callbacks of a sweep: the console's progress lines and the feed into MLflow
(:class:`tune.tracking.SweepTracker`, which knows nothing of Ray)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray.tune import Callback
from ray.tune.logger import TBXLoggerCallback

from tune.tracking import SweepTracker
from tune.trials import COMPLETED, FAILED, STOPPED, asha_rung, status_of

SHOWN = {COMPLETED: COMPLETED, STOPPED: "stopped by ASHA", FAILED: FAILED.upper()}  # on the console


def tensorboard_logger(on: bool) -> TBXLoggerCallback:
    """The TensorBoard logger a sweep's Tuner gets (``tensorboard:`` in the experiment). Ray adds its own to every
    Tuner that has none, and on the driver it costs every result a flush of the trial's event file to disk (fsync)
    on Tune's loop, and every trial two threads and a pipe. With 128 trials at once, their checkpoints on the same
    disk, those flushes made steps of the loop of up to 6 s while results waited (docs/benchmarks.md, "Sweep at
    scale"). Ray's JSON and CSV loggers (result.json, progress.csv: what the summary and the report read) are
    still added by Ray."""
    return QuietTensorBoard() if on else NoTensorBoard()


class QuietTensorBoard(TBXLoggerCallback):
    """Ray's TensorBoard logger without its flush after every result: each trial's writer thread writes the
    events every 30 s, and the trial's end writes the rest."""

    def log_trial_start(self, trial) -> None:  # noqa: ANN001 -- a ray.tune.experiment.Trial
        super().log_trial_start(trial)
        self._trial_writer[trial].flush = _later  # what Ray calls after each result; close() still flushes


def _later() -> None:
    """The writer's own thread flushes (every 30 s), and closing it at the trial's end."""


class NoTensorBoard(TBXLoggerCallback):
    """In the place of Ray's TensorBoard logger (``tensorboard: false``, the default): no event files, no
    threads; Ray adds its own only where a Tuner has none of this type."""

    def __init__(self) -> None:  # Ray's starts with an import of tensorboardX
        pass

    def log_trial_start(self, trial) -> None:  # noqa: ANN001
        pass

    def log_trial_result(self, iteration: int, trial, result: dict[str, Any]) -> None:  # noqa: ANN001
        pass

    def log_trial_end(self, trial, failed: bool = False) -> None:  # noqa: ANN001
        pass


class ProgressCallback(Callback):
    """One line per finished trial with the best dev WER so far (Ray's own tables only with -v)."""

    def __init__(self, num_trials: int, every_seconds: float = 30.0):
        self.num_trials, self.done, self.best = num_trials, 0, (math.inf, "")
        self.last: dict[str, dict[str, Any]] = {}
        self.every, self.next_line = every_seconds, time.time() + every_seconds
        self.warned: set[str] = set()

    def on_trial_result(self, iteration, trials, trial, result, **info):  # noqa: ANN001
        self.last[trial.trial_id] = result
        for message in result.get("warnings") or ():  # each distinct warning once per sweep, not once per trial
            if message not in self.warned:
                self.warned.add(message)
                print(f"  trial {trial.trial_id} warned: {message}", flush=True)
        wer = result.get("dev_wer")
        if wer is not None and wer < self.best[0]:
            self.best = (wer, trial.trial_id)
        if time.time() >= self.next_line:  # a heartbeat between trial completions, at most every 30 s
            self.next_line = time.time() + self.every
            running = [t for t in trials if t.status == "RUNNING"]
            epochs = ", ".join(f"{t.trial_id} epoch {self.last.get(t.trial_id, {}).get('epoch', 0)}" for t in running)
            print(f"  ... {len(running)} running ({epochs}); {self.done}/{self.num_trials} done; best dev WER so far "
                  f"{100 * self.best[0]:.1f}%", flush=True)

    def _line(self, trial, status: str) -> None:  # noqa: ANN001
        self.done += 1
        r = self.last.get(trial.trial_id) or trial.last_result or {}  # after a restore: Ray's saved last result
        wer = r.get("best_dev_wer")
        best = "-" if math.isinf(self.best[0]) else f"{100 * self.best[0]:.1f}% ({self.best[1]})"
        print(f"[{self.done}/{self.num_trials}] trial {trial.trial_id} {status} after {r.get('epoch', 0)} epochs, "
              f"best dev WER {'-' if wer is None else f'{100 * wer:.1f}%'}  |  sweep best {best}", flush=True)

    def on_trial_complete(self, iteration, trials, trial, **info):  # noqa: ANN001
        if trial.trial_id not in self.last and not (trial.last_result or {}).get("epoch"):
            self.done += 1
            print(f"[{self.done}/{self.num_trials}] trial {trial.trial_id} ended before the restart (Optuna holds "
                  "its outcome): counted, not run again", flush=True)
            return
        r = self.last.get(trial.trial_id) or trial.last_result or {}
        self._line(trial, SHOWN[status_of(r)])
        if r.get("failed_reason"):
            print(f"  trial {trial.trial_id} failed: {r['failed_reason']}", flush=True)

    def on_trial_error(self, iteration, trials, trial, **info):  # noqa: ANN001
        self._line(trial, SHOWN[FAILED])
        if trial.error_file and os.path.exists(trial.error_file):  # the exception's own line, not the traceback
            lines = [line for line in Path(trial.error_file).read_text().splitlines() if line.strip()]
            print(f"  trial {trial.trial_id} failed: {lines[-1].strip() if lines else 'no message'} (traceback: "
                  f"{trial.error_file}; `slr sweep ... -v` streams the trials' output)", flush=True)


class MlflowCallback(Callback):
    """Ray Tune driver callback feeding a :class:`SweepTracker`."""

    def __init__(self, tracker: SweepTracker, sweep_params: dict[str, Any],
                 params_of: Callable[[Any], tuple[dict[str, Any], str]], grace: int, factor: float, max_t: int,
                 tags_of: Callable[[Any], dict[str, str]] | None = None,
                 name_of: Callable[[Any], str] | None = None):
        self.tracker, self.sweep_params, self.params_of, self.tags_of = tracker, sweep_params, params_of, tags_of
        self.name_of = name_of  # trial -> its run's name (tracking.run_name); None: the trial id
        self.grace, self.factor, self.max_t = grace, factor, max_t
        self.last: dict[str, dict[str, Any]] = {}  # trial id -> its last report seen by this driver

    def setup(self, **info):  # noqa: ANN003 -- also runs when a sweep is restored: re-find runs by tags
        self.tracker.start(self.sweep_params)

    def on_trial_start(self, iteration, trials, trial, **info):  # noqa: ANN001
        params, config_yaml = self.params_of(trial)
        self.tracker.child(trial.trial_id, params, config_yaml, restored={t.trial_id for t in trials},
                           run_tags=self.tags_of(trial) if self.tags_of else None,
                           name=self.name_of(trial) if getattr(self, "name_of", None) else None)

    def on_trial_result(self, iteration, trials, trial, result, **info):  # noqa: ANN001
        if not self.tracker.known(trial.trial_id):
            self.on_trial_start(iteration, trials, trial)
        self.last[trial.trial_id] = result
        self.tracker.metrics(trial.trial_id, result)

    def on_trial_complete(self, iteration, trials, trial, **info):  # noqa: ANN001
        if trial.trial_id not in self.last and not trial.last_result:
            return  # counted done on resume (Optuna holds its outcome): the sweep's end writes its status
        last = self.last.get(trial.trial_id) or trial.last_result
        reason = last.get("failed_reason")
        self.tracker.finish_trial(trial.trial_id, status_of(last), self._reached(trial),
                                  str(reason) if reason else None)

    def on_trial_error(self, iteration, trials, trial, **info):  # noqa: ANN001
        error = None
        if trial.error_file and os.path.exists(trial.error_file):
            error = Path(trial.error_file).read_text()[-2000:]
        self.tracker.finish_trial(trial.trial_id, status_of(None, error=True), self._reached(trial), error)

    def _reached(self, trial) -> int:  # noqa: ANN001
        epochs = int((self.last.get(trial.trial_id) or trial.last_result or {}).get("epoch", 0))
        return asha_rung(epochs, self.grace, self.factor, self.max_t)

    def on_step_end(self, iteration, trials, **info):  # noqa: ANN001
        self.tracker.flush()

    def on_experiment_end(self, trials, **info):  # noqa: ANN001 -- last chance: log or save for replay
        self.tracker.flush(final=True)  # runs left open by a killed driver are closed with the summary (finish)
