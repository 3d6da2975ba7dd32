"""The ``nvp`` command.

Subcommands take ``key=value`` overrides after their arguments (``crop.size=512``),
``--config FILE`` for extra YAML layers, and ``--dry-run`` to print the resolved
configuration and stop. Errors about inputs print one line naming the file and the
problem, and exit with status 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from nvp import __version__
from nvp.errors import InputError, NvpError

log = logging.getLogger("nvp")


def _split_overrides(items: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separate positional paths from ``key=value`` overrides (an existing path is a path)."""
    paths, overrides = [], []
    for it in items:
        if "=" in it and not Path(it).exists():
            overrides.append(it)
        else:
            paths.append(it)
    return paths, overrides


def _overrides_only(args: argparse.Namespace) -> list[str]:
    """The ``key=value`` overrides of a command that takes no further positionals."""
    extra, overrides = _split_overrides(args.overrides)
    if extra:
        raise InputError(f"unexpected arguments {extra} (overrides look like key=value)")
    return overrides


def _load(stage: str, args: argparse.Namespace, cli: list[str], flags: dict | None = None):
    """The stage's config: its default layer <- ``--config`` files <- explicit option
    ``flags`` (None values left out) <- ``key=value`` overrides; printed with ``--dry-run``."""
    from nvp.config import to_yaml
    from nvp.stages import STAGES

    overrides = {k: v for k, v in (flags or {}).items() if v is not None}
    cfg = STAGES[stage].config(*(args.config or []), overrides=overrides, cli=cli)
    if args.dry_run:
        print(to_yaml(cfg), end="")
    return cfg


def _run(stage: str, cfg, **inputs):
    from nvp.stages import STAGES

    return STAGES[stage].run(cfg, **inputs)


def cmd_preprocess(args: argparse.Namespace) -> int:
    from nvp.data.preprocess import results_table

    paths, overrides = _split_overrides(args.inputs)
    cfg = _load("preprocess", args, overrides)
    if args.dry_run:
        return 0
    r = _run("preprocess", cfg, inputs=paths, out=args.out)
    print(results_table(r.results))
    print(r.summary())
    return 1 if r.failed else 0


def cmd_build_face_model(args: argparse.Namespace) -> int:
    cfg = _load("build-face-model", args, _overrides_only(args))
    if args.dry_run:
        return 0
    r = _run("build-face-model", cfg, dataset=args.dataset)
    for line in r.report_lines:
        print(line)
    print(f"face model {r.model.hash} (K = {r.model.n_components}) -> {r.path}")
    for name, frames, seconds in r.refits:
        if seconds is None:
            print(f"  {name}: already fitted with this model")
        else:
            print(f"  {name}: refitted {frames} frames in {seconds:.1f} s")
    return 0


def _print_run(run: Path) -> None:
    from nvp.training import BEST_CKPT, LAST_CKPT

    print(f"run directory: {run}")
    for name, what in ((LAST_CKPT, "latest state, resume=RUN"), (BEST_CKPT, "best validation")):
        if (run / "checkpoints" / name).is_file():
            print(f"checkpoint ({what}): {run / 'checkpoints' / name}")


def cmd_train_a2e(args: argparse.Namespace) -> int:
    cfg = _load("train-a2e", args, _overrides_only(args))
    if args.dry_run:
        return 0
    _print_run(_run("train-a2e", cfg, dataset=args.dataset))
    return 0


def cmd_train_renderer(args: argparse.Namespace) -> int:
    cfg = _load("train-renderer", args, _overrides_only(args))
    if args.dry_run:
        return 0
    _print_run(_run("train-renderer", cfg, store=args.store))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from nvp.sweep import sweep_command

    items = ([args.file] if args.file else []) + list(args.overrides)
    paths, overrides = _split_overrides(items)
    if len(paths) > 1:
        raise InputError(f"one sweep file expected, got {paths} (overrides look like key=value)")
    return sweep_command(
        paths[0] if paths else None,
        overrides=overrides,
        configs=args.config or [],
        offline=args.offline or bool(args.resume),
        count=args.count,
        dataset=args.dataset,
        out=args.out,
        resume=args.resume,
        seed=args.seed,
        metric_value=args.metric_value,
        isolate=args.isolate,
        project=args.project,
        entity=args.entity,
        sweep_id=args.sweep_id,
        dry_run=args.dry_run,
    )


def cmd_fit_target(args: argparse.Namespace) -> int:
    cfg = _load("fit-target", args, _overrides_only(args))
    if args.dry_run:
        return 0
    path, r = _run("fit-target", cfg, checkpoint=args.checkpoint, store=args.target, out=args.out)
    print(
        f"mapping ({cfg.mode}, ridge {cfg.ridge:g}) fitted on {r.n_fit} frames in "
        f"{r.seconds:.2f} s -> {path}\n"
        f"held-out frames ({r.n_eval}): vertex RMS {r.vertex_rms_mm:.3f} mm, mouth "
        f"{r.vertex_rms_mouth_mm:.3f} mm, mouth-opening r = {r.mouth_opening_r:.3f}\n"
        f"mean-expression baseline: vertex RMS {r.baseline_vertex_rms_mm:.3f} mm, mouth "
        f"{r.baseline_vertex_rms_mouth_mm:.3f} mm; fit-frame RMS {r.fit_vertex_rms_mm:.3f} mm"
    )
    return 0


def cmd_import_official_a2e(args: argparse.Namespace) -> int:
    from nvp.a2e.official import import_official

    out = import_official(args.checkpoint, args.out)
    print(f"imported {args.checkpoint} -> {out}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from nvp.data.inspect import contact_sheet, format_summary, summary
    from nvp.data.store import SequenceStore

    store = SequenceStore(args.store)
    s = summary(store)
    print(json.dumps(s, indent=2) if args.json else format_summary(s))
    out = Path(args.sheet) if args.sheet else store.path.parent / f"{store.name}_sheet.png"
    contact_sheet(store, out, n=args.frames)
    print(f"contact sheet: {out}")
    return 0


def cmd_make_target(args: argparse.Namespace) -> int:
    from nvp.reenact.target import MANIFEST

    out = _run(
        "make-target",
        None,
        out=args.out,
        store=args.store,
        a2e=args.a2e,
        renderer=args.renderer,
        mapping=args.mapping,
        name=args.name,
    )
    m = json.loads((out / MANIFEST).read_text())
    st = m["store"]
    print(
        f"target {m['name']} -> {out}\n  store {st['path']} ({st['n_frames']} frames, "
        f"{st['size']} px, {st['fps']:g} fps)\n  A2E {m['a2e']['hash']}, face model "
        f"{st['face_model_hash']}"
    )
    return 0


def _reenact_flags(args: argparse.Namespace) -> dict:
    return {
        "output": args.output,
        "side_by_side": True if args.side_by_side else None,
        "smooth_sigma": args.smooth,
        "mouth_only": True if args.mouth_only else None,
        "device": args.device,
    }


def _print_reenact(r, target) -> int:
    print(r.table())
    print(
        f"{r.n_frames} frames ({r.duration_s:.2f} s of audio, {r.speech_s:.2f} s speech) at "
        f"{r.frames_per_s:.2f} frames/s -> {r.out}"
    )
    if r.upscale is not None:
        print(f"face scaled {r.upscale:.2f}x from the store's {target.size} px into the source")
    return 0


def cmd_reenact(args: argparse.Namespace) -> int:
    cfg = _load("reenact", args, _overrides_only(args), _reenact_flags(args))
    if args.dry_run:
        return 0
    return _print_reenact(
        *_run("reenact", cfg, target=args.target, audio=Path(args.audio), out=args.out)
    )


def cmd_say(args: argparse.Namespace) -> int:
    flags = _reenact_flags(args)
    flags["tts"] = {k: v for k, v in {"voice": args.voice}.items() if v}
    cfg = _load("say", args, _overrides_only(args), flags)
    if args.dry_run:
        return 0
    return _print_reenact(
        *_run("say", cfg, target=args.target, text=args.text, out=args.out, keep_wav=args.keep_wav)
    )


def cmd_evaluate(args: argparse.Namespace) -> int:
    # ``--audio A B key=value``: the list swallows trailing overrides; give them back
    audio = [a for a in args.audio or [] if "=" not in a or Path(a).exists()]
    args.overrides = [a for a in args.audio or [] if a not in audio] + list(args.overrides)
    flags = {
        "split": args.split,
        "device": args.device,
        "landmarks": args.landmarks,
        "audio": audio or None,
    }
    cfg = _load("evaluate", args, _overrides_only(args), flags)
    if args.dry_run:
        return 0
    result = _run("evaluate", cfg, target=args.target, out=args.out)
    if isinstance(result, str):  # the cross-speaker report
        print(result)
        print(f"report: {Path(args.out) / 'cross_speaker.md'}")
        return 0
    from nvp.reenact.evaluate import markdown_report

    print(markdown_report(result))
    print(f"report: {Path(args.out) / 'report.md'}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from nvp.demo import run_demo

    run_demo(args.out, args.video, size=args.size)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nvp", description="Neural Voice Puppetry: audio-driven facial reenactment."
    )
    p.add_argument("--version", action="version", version=f"nvp {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--config",
            action="append",
            metavar="YAML",
            help="extra YAML config layered over the defaults (repeatable)",
        )
        sp.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")

    sp = sub.add_parser(
        "preprocess",
        help="videos -> sequence stores",
        description="Preprocess talking-head videos into sequence stores.",
    )
    sp.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT|key=value",
        help="video files or folders of videos, then key=value overrides",
    )
    sp.add_argument("--out", required=True, metavar="DATASET_DIR", help="dataset folder")
    common(sp)
    sp.set_defaults(func=cmd_preprocess)

    sp = sub.add_parser("build-face-model", help="learn the expression basis over a dataset")
    sp.add_argument("dataset", metavar="DATASET_DIR")
    sp.add_argument("overrides", nargs="*", metavar="key=value")
    common(sp)
    sp.set_defaults(func=cmd_build_face_model)

    sp = sub.add_parser("train-a2e", help="train the generalized Audio2ExpressionNet")
    sp.add_argument("dataset", metavar="DATASET_DIR")
    sp.add_argument("overrides", nargs="*", metavar="key=value")
    common(sp)
    sp.set_defaults(func=cmd_train_a2e)

    sp = sub.add_parser("train-renderer", help="train a target's neural texture and renderer")
    sp.add_argument("store", metavar="TARGET_STORE")
    sp.add_argument("overrides", nargs="*", metavar="key=value")
    common(sp)
    sp.set_defaults(func=cmd_train_renderer)

    sp = sub.add_parser(
        "sweep",
        help="hyper-parameter sweep from a W&B sweep YAML (W&B agent, or --offline)",
        description="Run a W&B sweep file (conf/sweeps/*.yaml): online through W&B's sweep "
        "server and agent, or --offline on this machine with W&B's sweep engine (a run "
        "directory per trial, summary.csv / summary.md ranked by the sweep's metric).",
    )
    sp.add_argument("file", nargs="?", metavar="SWEEP_YAML")
    sp.add_argument(
        "overrides", nargs="*", metavar="key=value", help="config overrides of every trial"
    )
    sp.add_argument("--offline", action="store_true", help="run locally, without W&B's server")
    sp.add_argument("--count", type=int, metavar="N", help="trials to run (default: the grid)")
    sp.add_argument("--dataset", metavar="PATH", help="dataset / target store the sweep trains on")
    sp.add_argument("--out", default="runs/sweeps", help="parent of offline sweep directories")
    sp.add_argument("--resume", metavar="SWEEP_DIR", help="continue an offline sweep")
    sp.add_argument("--seed", type=int, default=0, help="seed of the offline search")
    sp.add_argument(
        "--metric-value",
        choices=["best", "last"],
        default="best",
        help="offline ranking by each trial's best or last metric value (default best)",
    )
    sp.add_argument("--isolate", action="store_true", help="offline: each trial in its own process")
    sp.add_argument("--project", help="W&B project (default: the file's, else nvp)")
    sp.add_argument("--entity", help="W&B entity")
    sp.add_argument("--sweep-id", help="join an existing W&B sweep instead of creating one")
    common(sp)
    sp.set_defaults(func=cmd_sweep)

    sp = sub.add_parser("fit-target", help="closed-form person-specific mapping of a target")
    sp.add_argument("checkpoint", metavar="A2E_CKPT")
    sp.add_argument("target", metavar="TARGET_STORE")
    sp.add_argument("overrides", nargs="*", metavar="key=value")
    sp.add_argument(
        "--out", help="mapping file (default: beside the store, named by the checkpoint hash)"
    )
    common(sp)
    sp.set_defaults(func=cmd_fit_target)

    sp = sub.add_parser(
        "import-official-a2e", help="convert the authors' released Audio2ExpressionNet checkpoint"
    )
    sp.add_argument("checkpoint", metavar="CKPT")
    sp.add_argument("--out", required=True, metavar="A2E_CKPT")
    sp.set_defaults(func=cmd_import_official_a2e)

    sp = sub.add_parser("inspect", help="summary and contact sheet of a store")
    sp.add_argument("store", metavar="STORE")
    sp.add_argument("--sheet", metavar="PNG", help="contact sheet path (default beside the store)")
    sp.add_argument("--frames", type=int, default=8, help="frames on the contact sheet")
    sp.add_argument("--json", action="store_true", help="print the summary as JSON")
    sp.set_defaults(func=cmd_inspect)

    sp = sub.add_parser(
        "make-target",
        help="bundle a target: store + A2E checkpoint + mapping + renderer",
        description="Assemble a TARGET folder for reenact / say / evaluate.",
    )
    sp.add_argument("--store", required=True, help="the target's sequence store")
    sp.add_argument("--a2e", required=True, help="A2E checkpoint or run directory")
    sp.add_argument("--renderer", required=True, help="renderer checkpoint or run directory")
    sp.add_argument("--mapping", help="mapping .npz (default: fitted now when absent)")
    sp.add_argument("--name", help="target name (default: the store's)")
    sp.add_argument("--out", required=True, metavar="TARGET_DIR")
    sp.set_defaults(func=cmd_make_target)

    def reenact_options(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--target", required=True, metavar="TARGET_DIR")
        sp.add_argument("--out", required=True, metavar="OUT.mp4")
        sp.add_argument("--output", choices=["crop", "full"], help="crop (default) or full frame")
        sp.add_argument("--side-by-side", action="store_true", help="driving frame | result")
        sp.add_argument("--smooth", type=float, metavar="SIGMA", help="expression smoothing")
        sp.add_argument("--mouth-only", action="store_true", help="upper face from the target")
        sp.add_argument("--device", help="auto (default), cpu, cuda")
        sp.add_argument("overrides", nargs="*", metavar="key=value")
        common(sp)

    sp = sub.add_parser("reenact", help="audio file -> mp4 of the target speaking it")
    sp.add_argument("--audio", required=True, help="driving audio (any format FFmpeg reads)")
    reenact_options(sp)
    sp.set_defaults(func=cmd_reenact)

    sp = sub.add_parser("say", help="text -> speech (TTS) -> mp4 of the target speaking it")
    sp.add_argument("text", help="the sentence to say")
    sp.add_argument("--voice", help="TTS voice (espeak-ng: en-us, en, de, ...)")
    sp.add_argument("--keep-wav", action="store_true", help="keep the speech as OUT.wav")
    reenact_options(sp)
    sp.set_defaults(func=cmd_say)

    sp = sub.add_parser("evaluate", help="self-reenactment metrics on held-out frames")
    sp.add_argument("--target", required=True, metavar="TARGET_DIR")
    sp.add_argument("--out", required=True, metavar="REPORT_DIR")
    sp.add_argument(
        "--split",
        choices=["train", "val", "test", "heldout"],
        help="default: test; heldout = val and test together",
    )
    sp.add_argument("--landmarks", choices=["mediapipe", "dlib"], help="default: mediapipe")
    sp.add_argument("--device", help="auto (default), cpu, cuda")
    sp.add_argument(
        "--audio",
        nargs="+",
        metavar="AUDIO",
        help="cross-speaker mode: drive the target with these voices (files or folders) and "
        "measure its lip motion against its own (no ground truth)",
    )
    sp.add_argument("overrides", nargs="*", metavar="key=value")
    common(sp)
    sp.set_defaults(func=cmd_evaluate)

    sp = sub.add_parser(
        "demo",
        help="every stage, for real, at a small size, on clips nvp makes itself",
        description="Generate talking heads (TTS + a public-domain photo), preprocess, build the "
        "face model, train A2E and the renderer, reenact a new sentence and evaluate.",
    )
    sp.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    sp.add_argument("--video", help="run on your own talking-head video instead")
    sp.add_argument("--size", type=int, default=128, help="crop size of the stores, px")
    sp.set_defaults(func=cmd_demo)
    return p


#: What a user can do after stopping each command with Ctrl-C (what is kept, what resumes).
AFTER_INTERRUPT = {
    "preprocess": "finished stores and the finished stages of the interrupted ones are kept; "
    "rerun the same command to resume",
    "build-face-model": "the stores not yet refitted still name the old face model; rerun the "
    "same command to finish",
    "train-a2e": "continue from the run's last checkpoint with resume=<its run directory>",
    "train-renderer": "continue from the run's last checkpoint with resume=<its run directory>",
    "sweep": "finished trials are kept; continue with --resume <the sweep directory>",
    "fit-target": "nothing was written; rerun to start again",
    "import-official-a2e": "nothing was written; rerun to start again",
    "inspect": "rerun to start again",
    "make-target": "the target folder is incomplete (no target.json); rerun to start again",
    "reenact": "nothing was written to the output; rerun to start again (reenactment does not "
    "resume; the partial file is removed)",
    "say": "nothing was written to the output; rerun to start again (reenactment does not "
    "resume; the partial file is removed)",
    "evaluate": "the report is incomplete; rerun to start again",
    "demo": "the generated clips and finished stores are kept and reused by a rerun; the "
    "training stages start again",
}


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("GLOG_minloglevel", "2")
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    # Positionals after an option (`INPUT --out DIR key=value`) arrive here: keep them.
    bad = [r for r in rest if r.startswith("-")]
    target = "inputs" if hasattr(args, "inputs") else "overrides"
    if bad or (rest and not hasattr(args, target)):
        parser.error(f"unrecognized arguments: {' '.join(bad or rest)}")
    if rest:
        setattr(args, target, [*getattr(args, target), *rest])
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except NvpError as exc:
        print(f"nvp {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"nvp {args.command}: interrupted; {AFTER_INTERRUPT[args.command]}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped (`| head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
