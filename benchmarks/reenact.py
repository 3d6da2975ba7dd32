"""Reenactment speed: frames/s and the time per stage (features, A2E, raster, render, encode).

    python benchmarks/reenact.py [--sizes 256 512] [--convs dilated strided] [--seconds 4]
        [--device cpu] [--out /tmp/nvp-bench-reenact]

For each size, one HDTF clip is preprocessed at that size (default settings: Whisper
features), an A2E checkpoint and a renderer (``conf/render/cpu.yaml``, one training step:
the weights do not change the cost) are made for it, and ``nvp reenact`` renders
``--seconds`` of a LibriSpeech utterance (crop output, and full frame). The per-stage table
is printed and written to ``OUT/results.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nvp.config import CONF_DIR  # noqa: E402
from nvp.data.store import find_stores  # noqa: E402
from nvp.stages import run_stage  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--convs", nargs="+", default=["dilated", "strided"])
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--outputs", nargs="+", default=["crop", "full"], help="output modes to time")
    ap.add_argument("--clip", default="WDA_AlexandriaOcasioCortez_000.mp4")
    ap.add_argument("--out", default="/tmp/nvp-bench-reenact")
    args = ap.parse_args()

    import torch

    from nvp.io.audio import load_audio, write_wav
    from nvp.reenact.config import ReenactConfig
    from nvp.reenact.pipeline import reenact
    from nvp.reenact.target import load_target

    data = Path(os.environ.get("NVP_DATA", REPO.parent / "shared" / "data"))
    out = Path(args.out)
    speech = sorted((data / "audio" / "librispeech").glob("*"))[0]
    wav = out / "drive.wav"
    out.mkdir(parents=True, exist_ok=True)
    a = load_audio(speech, 16000)[: int(args.seconds * 16000)]
    write_wav(wav, a, 16000)
    lines = [
        f"# nvp reenact speed ({args.device}, torch threads {torch.get_num_threads()}, "
        f"{args.seconds:g} s of audio)",
        "",
        "| size | renderer | output | frames/s | features | a2e | raster | render | compose | "
        "encode | check | (ms/frame) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size in args.sizes:
        ds = out / f"ds{size}"
        if not find_stores(ds):
            clip = data / "video" / "hdtf" / args.clip
            r = run_stage("preprocess", cli=[f"crop.size={size}"], inputs=[clip], out=ds)
            if r.failed:
                raise SystemExit(r.failed[0].message)
            run_stage("build-face-model", dataset=ds)
        store = find_stores(ds)[0]
        a2e = out / f"a2e{size}"
        if not list(a2e.glob("a2e-*/checkpoints/last.ckpt")):
            tiny = CONF_DIR / "a2e" / "tiny.yaml"
            run_stage("train-a2e", tiny, cli=[f"out={a2e}", "trainer.max_steps=1"], dataset=ds)
        for conv in args.convs:
            r = out / f"render{size}-{conv}"
            if not list(r.glob("render-*/checkpoints/last.ckpt")):
                run_stage(
                    "train-renderer",
                    cli=[
                        f"out={r}",
                        f"renderer.conv={conv}",
                        "trainer.max_steps=1",
                        "trainer.enable_progress_bar=false",
                        "trainer.limit_val_batches=0",
                    ],
                    store=store,
                )
            tdir = out / f"target{size}-{conv}"
            if not (tdir / "target.json").exists():
                run_stage(
                    "make-target",
                    out=tdir,
                    store=store,
                    a2e=next(a2e.glob("a2e-*")),
                    renderer=next(r.glob("render-*")),
                )
            t = load_target(tdir, device=args.device)
            for output in args.outputs:
                cfg = ReenactConfig(output=output, device=args.device)
                res = reenact(t, wav, out / f"out{size}-{conv}-{output}.mp4", cfg)
                print(f"\n{size} px, {conv}, {output}:\n{res.table()}")
                ms = {k: 1000 * v / res.n_frames for k, v in res.seconds.items()}
                lines.append(
                    f"| {size} | {conv} | {output} | {res.frames_per_s:.2f} | "
                    + " | ".join(
                        f"{ms.get(k, 0):.1f}"
                        for k in (
                            "features",
                            "a2e",
                            "raster",
                            "render",
                            "compose",
                            "encode",
                            "check",
                        )
                    )
                    + " | |"
                )
        (out / "results.md").write_text("\n".join(lines) + "\n")  # after every size
    print("\n".join(lines))


if __name__ == "__main__":
    main()
