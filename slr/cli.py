"""The ``slr`` command line: data, training, evaluation and decoding. Other packages add their commands through the
``slr.commands`` entry point group (``tune`` adds ``sweep``, ``export``, ``report``): ``slr`` never imports them."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from slr.config import PRECISIONS, RUNTIMES, Config, ConfigError, parse_override


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if (code := _unknown_command(argv, parser.command_names)) is not None:
        return code
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return run(args)


def run(args: argparse.Namespace) -> int:
    """One parsed command, its errors as one clear line and an exit status (2 config, 1 error, 130 interrupted)."""
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
    try:
        return int(args.func(args) or 0)
    except ConfigError as err:
        print(f"slr: config error: {err}", file=sys.stderr)
        return 2
    except (ValueError, OSError, RuntimeError) as err:  # OSError: missing/existing files, storage, network
        if getattr(args, "verbose", False):
            raise
        print(f"slr: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("slr: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="slr", description="Continuous sign language recognition: corpora, CTC "
                                "training, evaluation and Ray Tune sweeps.")
    p.add_argument("-v", "--verbose", action="store_true", help="more output; full tracebacks on errors")
    p.add_argument("--version", action="version", version=f"slr-tune {version()}")
    sub = p.add_subparsers(title="commands", metavar="COMMAND")

    data = sub.add_parser("data", help="make and inspect corpora").add_subparsers(metavar="ACTION")
    synth = data.add_parser("synth", help="write the embedded synthetic corpus (tiny | quickstart | bench)")
    synth.add_argument("--preset", default="quickstart", choices=["tiny", "quickstart", "bench"])
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--out", required=True, help="corpus directory to create")
    synth.add_argument("--signer-independent", action="store_true", help="dev/test signers never seen in train")
    synth.add_argument("--force", action="store_true", help="replace a corpus already in --out")
    synth.add_argument("--sentences", metavar="FILE", help="sign the gloss sequences of this annotation file "
                       "(PHOENIX .stm / .corpus.csv, or id,signer,split,glosses CSV) instead of the preset's unigram "
                       "law: real sentence structure, e.g. ../shared/data/phoenix2014/phoenix2014-groundtruth-train.stm")
    synth.set_defaults(func=cmd_synth)
    stats = data.add_parser("stats", help="summarize a corpus directory")
    stats.add_argument("corpus")
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(func=cmd_stats)
    imp = data.add_parser("import", help="import landmark recordings (.pose/.npy/.npz) and annotations",
                          description="Import landmark recordings and their annotations into a corpus directory. "
                          "--format names the landmark type (pose, npy: the annotation format is detected) or the "
                          "annotation format (phoenix2014: .corpus.csv or .stm; phoenix2014t; csv: id,signer,split,"
                          "glosses). Recordings are matched to annotations by file stem = sample id. Good inputs are "
                          "imported, every bad one is reported by name, and the exit status is 1 if any failed.")
    imp.add_argument("--format", required=True, choices=["pose", "npy", "phoenix2014", "phoenix2014t", "csv"])
    imp.add_argument("--out", required=True, help="corpus directory to create")
    imp.add_argument("--annotations", action="append", default=[], metavar="FILE",
                     help="annotation file (repeat for train/dev/test files)")
    imp.add_argument("--fps", type=float, default=25.0, help="corpus frame rate; other rates are resampled")
    imp.add_argument("--feature-layout", choices=["seed6516"],
                     help="inputs are [T, D] precomputed features in this declared layout")
    imp.add_argument("--workers", type=int, default=0, help="reader processes (default: all cores)")
    imp.add_argument("--json", action="store_true", help="print the import report as JSON")
    imp.add_argument("--force", action="store_true", help="replace a corpus already in --out")
    imp.add_argument("inputs", nargs="+", metavar="INPUT", help="landmark files or directories (searched recursively)")
    imp.set_defaults(func=cmd_import)

    train = sub.add_parser("train", help="train the CTC student on a corpus")
    train.add_argument("--config", help="YAML config (defaults: the seed baseline)")
    train.add_argument("--corpus", help="corpus directory (overrides data.corpus)")
    train.add_argument("--out", required=True, help="run directory for checkpoints and metrics.jsonl")
    train.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    train.add_argument("--quiet", action="store_true",
                       help="no per-epoch lines (and no batch bar, which shows only on a terminal)")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")
    train.set_defaults(func=cmd_train)

    ev = sub.add_parser("eval", help="WER and S/D/I of a checkpoint on a split; writes a CTM")
    ev.add_argument("--checkpoint", required=True)
    ev.add_argument("--corpus", help="corpus directory (default: the one the model was trained on)")
    ev.add_argument("--split", default="dev", choices=["train", "dev", "test"])
    ev.add_argument("--scorer", choices=["plain", "phoenix2014"])
    ev.add_argument("--beam", type=int, default=0, help="beam width (0 = greedy)")
    ev.add_argument("--precision", choices=PRECISIONS, default="fp32",
                    help="model precision on CPU: bf16 or int8 run faster where the CPU supports them; this "
                         "command shows what they cost in WER (default: fp32)")
    ev.add_argument("--runtime", choices=RUNTIMES, default="torch", help=RUNTIME_HELP)
    ev.add_argument("--ctm", help="write hypotheses as CTM here (default: next to the checkpoint)")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=cmd_eval)

    dec = sub.add_parser("decode", help="recognize recordings (.pose/.npy/.npz): glosses with frame spans")
    dec.add_argument("--checkpoint", required=True)
    dec.add_argument("--beam", type=int, default=0, help="beam width (0 = greedy)")
    dec.add_argument("--precision", choices=PRECISIONS, default="fp32",
                     help="model precision (check its WER with `slr eval --precision` first; default: fp32)")
    dec.add_argument("--runtime", choices=RUNTIMES, default="torch", help=RUNTIME_HELP)
    dec.add_argument("--json", action="store_true")
    dec.add_argument("inputs", nargs="+", metavar="INPUT")
    dec.set_defaults(func=cmd_decode)

    for add in command_plugins():  # commands of installed extensions (`slr sweep`, `slr export`, ... from tune)
        add(sub)
    p.command_names = set(sub.choices)
    return p


RUNTIME_HELP = ("torch (default) or onnx: ONNX Runtime, fp32, ~1.6x faster on a CPU core; the checkpoint is "
                "exported beside it (NAME.onnx) on first use (needs pip install 'slr-tune[onnx]')")


# -- data ---------------------------------------------------------------------------------------------
def refuse_to_overwrite(path: str | Path, force: bool, what: str) -> None:
    """Outputs are never replaced silently: an existing file, or a folder with anything in it, needs --force."""
    path = Path(path)
    taken = path.is_file() or (path.is_dir() and any(path.iterdir()))
    if taken and not force:
        raise FileExistsError(f"{path} already exists and holds {what}: pass --force to replace it, or choose "
                              "another --out")


def cmd_synth(args: argparse.Namespace) -> int:
    from slr.corpus.synthetic import generate
    refuse_to_overwrite(args.out, args.force, "files (a corpus?)")
    sentences = None
    if args.sentences:
        from slr.corpus.annotations import read_annotations
        sentences = [a.glosses for a in read_annotations(args.sentences)]  # errors name the file and line
    out = generate(args.preset, args.out, seed=args.seed, signer_independent=args.signer_independent,
                   progress=sys.stderr.isatty(), sentences=sentences, sentences_source=args.sentences or "")
    print(f"wrote {args.preset} corpus to {out}")
    return cmd_stats(argparse.Namespace(corpus=str(out), json=False))


def cmd_stats(args: argparse.Namespace) -> int:
    from slr.corpus import Corpus
    stats = Corpus(args.corpus).stats()
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    s = stats
    print(f"corpus      {s['root']}  ({s['layout']}, {s['fps']:g} fps, {s['disk_bytes'] / 2**20:.1f} MiB)")
    print("samples     " + "  ".join(f"{k} {v}" for k, v in s["samples"].items()))
    print(f"signers     {len(s['signers'])}: {', '.join(s['signers'][:10])}")
    print(f"vocabulary  {s['vocab_size']} (incl. <blank>, <unk>)")
    print(f"frames      total {s['frames']['total']}  mean {s['frames']['mean']:.1f}  max {s['frames']['max']}")
    print(f"glosses     mean {s['glosses_per_sample']['mean']:.2f} per sample, max {s['glosses_per_sample']['max']}")
    print(f"unseen      dev {s['unseen_gloss_tokens']['dev']}  test {s['unseen_gloss_tokens']['test']} gloss tokens")
    print(f"missing     {100 * s['missing_point_fraction']:.2f}% of landmark points")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from slr.corpus.importer import REPORT, import_corpus, print_progress
    refuse_to_overwrite(args.out, args.force, "files (a corpus?)")
    report = import_corpus(args.inputs, args.out, args.annotations, fmt=args.format, fps=args.fps,
                           feature_layout=args.feature_layout, workers=args.workers or None, progress=print_progress)
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    else:
        print(report.summary())
        print(f"report: {Path(args.out) / REPORT}")
    for bad in report.bad_files:
        print(f"slr: bad input {bad['file']}: {bad['reason']}", file=sys.stderr)
    return 1 if report.failed else 0


def cmd_decode(args: argparse.Namespace) -> int:
    from slr import checkpoint
    from slr.corpus.readers import RecordingError, read_recording
    from slr.evaluate import inference_model, load_model, recognize
    state = checkpoint.load(args.checkpoint)
    cfg, vocab, features, model = load_model(args.checkpoint, state=state)
    model = inference_model(args.checkpoint, model, args.precision, args.runtime)
    fps = float(state.get("fps", 25.0))
    dim = cfg.features.input_dim if cfg.features.layout == "precomputed" else None
    failed = 0
    for path in args.inputs:
        try:
            rec = read_recording(path, fps=fps, feature_dim=dim)
        except RecordingError as err:
            print(f"slr: {err}", file=sys.stderr)
            failed += 1
            continue
        if rec.is_landmarks == (cfg.features.layout == "precomputed"):
            print(f"slr: {path}: the model takes {cfg.features.layout} input", file=sys.stderr)
            failed += 1
            continue
        glosses = recognize(features, model, vocab, rec.values, None, beam=args.beam)
        if args.json:
            print(json.dumps(dict(input=str(path), frames=rec.frames, fps=fps, glosses=glosses)))
        else:
            spans = " ".join(f"{g['gloss']}[{g['start']}:{g['end']}]" for g in glosses)
            print(f"{path}: {' '.join(g['gloss'] for g in glosses) or '(nothing recognized)'}\n  spans {spans}")
    return 1 if failed else 0


# -- training and evaluation ------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    from slr.train import Trainer
    out = Path(args.out)
    if args.resume and not (out / "last.pt").exists():
        raise FileNotFoundError(f"nothing to resume: {out} holds no run (no last.pt)")
    if not args.resume and (out / "last.pt").exists():
        raise ValueError(f"{out} already holds a run (last.pt); pass --resume to continue it or pick a new --out")
    # A resumed run goes on with its own config (OUT/config.yaml), not the defaults, unless --config is given
    config = args.config or (str(out / "config.yaml") if args.resume and (out / "config.yaml").exists() else None)
    cfg = Config.load(config, args.overrides) if config else Config().override(
        dict(parse_override(o) for o in args.overrides))
    corpus = args.corpus or cfg.data.corpus
    if not corpus:
        raise ConfigError("data.corpus", "", "give --corpus DIR or set data.corpus in the config")
    cfg = cfg.override({"data.corpus": str(corpus)})
    _warn_if_machine_differs(args.config)
    trainer = Trainer(cfg, out=out, progress=not args.quiet)  # opens and checks the corpus: nothing written yet
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(trainer.cfg.to_yaml())
    print(f"training {trainer.model.num_parameters():,} parameters on {trainer.device} "
          f"({len(trainer.train_set)} train / {len(trainer.dev_set)} dev samples"
          + (f", {len(trainer.train_set.excluded)} excluded as too short for CTC" if trainer.train_set.excluded
             else "") + ")", flush=True)
    summary = trainer.fit(resume=out / "last.pt" if args.resume else None)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    wer = summary["best_dev_wer"]
    print(f"best dev WER {100 * wer:.2f}% at epoch {summary['best_epoch']}  ->  {out / 'best.pt'}")
    return 0


def _warn_if_machine_differs(config_path: str | None) -> None:
    """An exported config (slr export) records what its trial ran on; retraining elsewhere is a new run."""
    from slr.checkpoint import differing_facts, machine_facts
    from slr.config import read_yaml
    recorded = ((read_yaml(config_path).get("provenance") or {}).get("machine") or {}) if config_path else {}
    if not recorded:
        return
    diffs = differing_facts(recorded, machine_facts())
    if diffs:
        print(f"warning: {config_path} was trained with {'; '.join(diffs)}: the retrain will not reproduce the "
              "trial bit for bit (same config, different float rounding)", file=sys.stderr, flush=True)


def cmd_eval(args: argparse.Namespace) -> int:
    from slr.evaluate import evaluate_checkpoint, write_ctm
    result = evaluate_checkpoint(args.checkpoint, args.corpus, args.split, scorer=args.scorer, beam=args.beam,
                                 precision=args.precision, runtime=args.runtime)
    ctm = Path(args.ctm) if args.ctm else Path(args.checkpoint).with_suffix(f".{args.split}.ctm")
    write_ctm(ctm, result["ids"], result["hyps"], fps=result["fps"])
    keys = ("wer", "substitutions", "deletions", "insertions", "words", "sentences")
    if args.json:
        print(json.dumps({**{k: result[k] for k in keys}, "split": args.split, "scorer": result["scorer"],
                          "precision": args.precision, "runtime": args.runtime, "ctm": str(ctm)}, indent=2))
    else:
        print(f"{args.split} WER {100 * result['wer']:.2f}%  (S {result['substitutions']}  D {result['deletions']}  "
              f"I {result['insertions']}  N {result['words']}, {result['sentences']} sentences, "
              f"scorer {result['scorer']}, {args.precision} on {args.runtime})\nhypotheses: {ctm}")
    return 0


# -- commands from extensions -----------------------------------------------------------------------------
PLUGIN_GROUP = "slr.commands"  # entry points: a function taking the subparsers and adding its commands
# For the message when a command's extension is missing: which extra of slr-tune provides it
EXTRA_OF = {"sweep": "tune", "export": "tune", "report": "tune", "mlflow-replay": "tune", "tune-decode": "tune"}


def command_plugins() -> list:
    """The command-adding functions of installed packages (the ``slr.commands`` entry point group). ``slr``
    names none of them: ``tune`` registers its commands there (pyproject.toml)."""
    from importlib.metadata import entry_points
    adders = []
    for ep in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        try:
            adders.append(ep.load())
        except (ImportError, AttributeError) as err:  # a broken extension must not take the core commands down
            print(f"slr: warning: commands of '{ep.name}' ({ep.value}) are unavailable: {err}", file=sys.stderr)
    return adders


def _unknown_command(argv: list[str], known: set[str]) -> int | None:
    """A command no installed package provides: say which extra does, instead of argparse's list of choices."""
    first = next((a for a in argv if not a.startswith("-")), None)
    if first in known or first not in EXTRA_OF:
        return None
    print(f"slr: '{first}' needs the {EXTRA_OF[first]} extra: pip install 'slr-tune[{EXTRA_OF[first]}]' "
          "(Ray Tune, Optuna, MLflow)", file=sys.stderr)
    return 2


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed
    try:
        return installed("slr-tune")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


if __name__ == "__main__":
    sys.exit(main())
