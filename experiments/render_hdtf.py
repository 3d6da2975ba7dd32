"""Self-reenactment check of the neural renderer on an HDTF clip (visual tracking).

    python experiments/render_hdtf.py [--clip WDA_AlexandriaOcasioCortez_000.mp4] [--size 128]
        [--minutes 8] [--convs dilated strided] [--set key=value ...] [--out /tmp/nvp-render]

Preprocesses the clip with a time split of 10/11 training and 1/11 held-out frames,
builds its face model (tracked expressions drive the UV maps), trains the renderer
(``conf/render/cpu.yaml`` + overrides) for the same wall time per variant, and reports the
validation metrics on the held-out last 1/11 of the frames after every epoch: PSNR and
mean colour l2 over the full frame and the face mask, SSIM. Sample grids
(target | UV | intermediate | output | error) are in each run's ``samples/``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nvp.config import load  # noqa: E402
from nvp.data.store import find_stores  # noqa: E402
from nvp.render.config import RenderConfig  # noqa: E402
from nvp.render.train import train_renderer  # noqa: E402
from nvp.runs import RunLog  # noqa: E402
from nvp.stages import run_stage  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--clip", default="WDA_AlexandriaOcasioCortez_000.mp4")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--minutes", type=float, default=8.0)
    ap.add_argument("--convs", nargs="+", default=["dilated", "strided"])
    ap.add_argument("--set", nargs="*", default=[], metavar="key=value")
    ap.add_argument("--out", default="/tmp/nvp-render")
    args = ap.parse_args()
    data = Path(os.environ.get("NVP_DATA", REPO.parent / "shared" / "data"))
    clip = data / "video" / "hdtf" / args.clip
    out = Path(args.out)
    ds = out / "dataset"
    if not find_stores(ds):
        pre = [f"crop.size={args.size}", "audio.name=mel"]
        split = ["split.train=10", "split.val=1", "split.test=0"]
        r = run_stage("preprocess", cli=[*pre, *split], inputs=[clip], out=ds)
        assert not r.failed, r.failed
        run_stage("build-face-model", dataset=ds)
    store = find_stores(ds)[0]
    mins = int(args.minutes)
    secs = round((args.minutes - mins) * 60)
    rows = []
    for conv in args.convs:
        cfg = load(
            RenderConfig,
            "render/cpu.yaml",
            cli=[
                f"renderer.conv={conv}",
                "data.crop=0",
                "data.batch_size=1",
                "trainer.max_epochs=1000",
                f"trainer.max_time=00:00:{mins:02d}:{secs:02d}",
                "trainer.enable_progress_bar=false",
                f"out={out / 'runs'}",
                f"name=render-{conv}",
                *args.set,
            ],
        )
        t0 = time.perf_counter()
        run = train_renderer(store, cfg)
        wall = time.perf_counter() - t0
        for r in RunLog.read(run).rows:
            if "val/psnr" in r:
                rows.append({"conv": conv, "run": run.name, "wall_s": round(wall), **r})
        print(f"{conv}: {run}")
    keys = ["val/psnr", "val/psnr_face", "val/colour_l2", "val/colour_l2_face", "val/ssim"]
    lines = [
        "| conv | epoch | step | PSNR | PSNR face | colour l2 | colour l2 face | SSIM |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        vals = " | ".join(f"{float(r[k]):.4f}" if "l2" in k else f"{float(r[k]):.2f}" for k in keys)
        lines.append(f"| {r['conv']} | {int(r['epoch'])} | {int(r['step'])} | {vals} |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
