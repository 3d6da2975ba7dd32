"""End to end on real data: corpus -> A2E -> HDTF target -> evaluation and reenactment.

    python experiments/reenact_hdtf.py [--out /tmp/nvp-reenact] [--size 128]
        [--corpus grid hdtf | all] [--target NAME]
        [--a2e-minutes 6] [--render-minutes 25] [--audio librispeech/<file>.ogg]
        [--voices ../shared/data/audio] [--a2e-set key=value ...] [--render-set key=value ...]

1. preprocess the corpus (``--corpus``: folders of ``video/``, default the GRID clips and both
   HDTF clips; ``all`` = every folder, which includes ``long/lieu_60s.mp4``) with the default
   settings (Whisper features) at ``--size`` and build the face model over them;
2. train Audio2ExpressionNet on the corpus (``conf/a2e/default.yaml``, ``--a2e-minutes`` at
   most);
3. train the renderer of the target (AOC, ``conf/render/cpu.yaml``, ``--render-minutes``);
4. ``nvp make-target`` (fits the target's mapping), ``nvp evaluate`` on the held-out test
   frames (with its lip-motion section), ``nvp reenact`` with a LibriSpeech utterance (an
   unseen speaker), and the offline sync proxy measured on the reenacted mp4 (landmarks
   detected on its frames against its own audio track);
5. with ``--voices``: ``nvp evaluate --audio`` (cross-speaker lip motion) with every audio
   file of those files / folders.

Every stage is skipped when its output exists, so the script resumes. Results:
``OUT/results.md`` and ``OUT/results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nvp.data.store import find_stores  # noqa: E402
from nvp.reenact.lips import audio_files  # noqa: E402
from nvp.stages import run_stage  # noqa: E402


def stage(name: str, done: bool, fn) -> float:
    if done:
        print(f"== {name}: done before, skipped")
        return 0.0
    print(f"== {name}")
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", default="/tmp/nvp-reenact")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--target", default="WDA_AlexandriaOcasioCortez_000")
    ap.add_argument("--a2e-minutes", type=float, default=6.0)
    ap.add_argument("--render-minutes", type=float, default=25.0)
    ap.add_argument("--audio", default=None, help="driving audio (default: first LibriSpeech)")
    ap.add_argument(
        "--corpus",
        nargs="+",
        default=["grid", "hdtf"],
        help="folders of the data's video/ to train A2E on ('all' = every folder)",
    )
    ap.add_argument(
        "--voices", nargs="*", default=[], help="audio files / folders for the cross-speaker check"
    )
    ap.add_argument(
        "--split", default="test", help="evaluated frames: test (default), val, heldout (both)"
    )
    ap.add_argument("--a2e-set", nargs="*", default=[], metavar="key=value", help="A2E overrides")
    ap.add_argument(
        "--render-set",
        nargs="*",
        default=["renderer.conv=strided"],
        metavar="key=value",
        help="renderer overrides (default: the strided U-Net, ~20x faster on a CPU)",
    )
    args = ap.parse_args()
    data = Path(os.environ.get("NVP_DATA", REPO.parent / "shared" / "data"))
    out = Path(args.out)
    ds = out / "dataset"
    times: dict[str, float] = {}

    def hhmmss(minutes: float) -> str:
        s = int(minutes * 60)
        return f"00:{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"

    if args.corpus == ["all"]:
        clips = sorted(p for p in (data / "video").iterdir() if p.is_dir())
    else:
        clips = [data / "video" / c for c in args.corpus]
    n_videos = sum(
        len([f for f in c.iterdir() if f.suffix.lower() in (".mp4", ".mpg", ".avi", ".mov")])
        for c in clips
    )
    times["preprocess"] = stage(
        "preprocess",
        len(find_stores(ds)) >= n_videos,
        lambda: run_stage("preprocess", cli=[f"crop.size={args.size}"], inputs=clips, out=ds),
    )
    times["face_model"] = stage(
        "build-face-model",
        (ds / "face_model.npz").exists(),
        lambda: run_stage("build-face-model", dataset=ds),
    )
    a2e_root = out / "a2e"
    times["train_a2e"] = stage(
        "train-a2e",
        bool(list(a2e_root.glob("a2e-*/checkpoints/last.ckpt"))),
        lambda: run_stage(
            "train-a2e",
            cli=[
                f"out={a2e_root}",
                f"trainer.max_time={hhmmss(args.a2e_minutes)}",
                "trainer.accelerator=cpu",
                "trainer.devices=1",
                "trainer.enable_progress_bar=false",
                *args.a2e_set,
            ],
            dataset=ds,
        ),
    )
    store = ds / f"{args.target}.zarr"
    r_root = out / "render"
    times["train_renderer"] = stage(
        "train-renderer",
        bool(list(r_root.glob("render-*/checkpoints/last.ckpt"))),
        lambda: run_stage(
            "train-renderer",
            cli=[
                f"out={r_root}",
                f"trainer.max_time={hhmmss(args.render_minutes)}",
                "trainer.max_epochs=1000",
                "trainer.enable_progress_bar=false",
                "data.crop=0",
                *args.render_set,
            ],
            store=store,
        ),
    )
    target = out / "target"
    a2e_run = sorted(a2e_root.glob("a2e-*"))[-1]
    r_run = sorted(r_root.glob("render-*"))[-1]
    times["make_target"] = stage(
        "make-target",
        (target / "target.json").exists(),
        lambda: run_stage(
            "make-target",
            out=target,
            store=store,
            a2e=a2e_run,
            renderer=r_run,
        ),
    )
    report = out / "evaluation"
    times["evaluate"] = stage(
        "evaluate",
        (report / "metrics.json").exists(),
        lambda: run_stage("evaluate", overrides={"split": args.split}, target=target, out=report),
    )
    audio = (
        Path(args.audio) if args.audio else sorted((data / "audio" / "librispeech").glob("*"))[0]
    )
    if not audio.exists():
        audio = data / "audio" / args.audio
    mp4 = out / f"reenact_{audio.stem}.mp4"
    times["reenact"] = stage(
        "reenact",
        mp4.exists(),
        lambda: run_stage(
            "reenact", overrides={"side_by_side": True}, target=target, audio=audio, out=mp4
        ),
    )
    mp4_full = out / f"reenact_{audio.stem}_full.mp4"
    times["reenact_full"] = stage(
        "reenact (full frame)",
        mp4_full.exists(),
        lambda: run_stage(
            "reenact", overrides={"output": "full"}, target=target, audio=audio, out=mp4_full
        ),
    )
    cross = out / "cross_speaker"
    if args.voices:
        times["cross_speaker"] = stage(
            "evaluate --audio (cross-speaker lip motion)",
            (cross / "cross_speaker.json").exists(),
            lambda: run_stage(
                "evaluate",
                overrides={"audio": [str(a) for a in audio_files(args.voices)]},
                target=target,
                out=cross,
            ),
        )
    from nvp.reenact.evaluate import video_sync_proxy

    sync = video_sync_proxy(mp4_full)
    metrics = json.loads((report / "metrics.json").read_text())
    res = {
        "audio": str(audio),
        "video": str(mp4),
        "sync_proxy_reenactment": sync,
        "evaluation": metrics,
        "seconds": times,
    }
    (out / "results.json").write_text(json.dumps(res, indent=2))
    md = (report / "report.md").read_text()
    md += (
        f"\n## Reenactment with `{audio.name}`\n\nOffline sync proxy on `{mp4_full.name}` "
        f"(mouth opening detected on its frames vs its own audio track): best lag "
        f"{sync['lag']} frames, r = {sync['r']:.3f} (frames with a face: {sync['frames_with_face']}"
        f" of {sync['frames']}).\n\nStage wall times (s): "
        + ", ".join(f"{k} {v:.0f}" for k, v in times.items())
        + "\n"
    )
    if args.voices:
        md += "\n" + (cross / "cross_speaker.md").read_text().replace("](", "](cross_speaker/")
    (out / "results.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
