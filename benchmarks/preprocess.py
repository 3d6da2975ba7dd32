"""Preprocessing speed per stage, rasterization cost and store size.

    python benchmarks/preprocess.py [VIDEO ...] [--size 256] [--out /tmp/nvp-bench]

Without VIDEO it uses the HDTF clips of ``../shared/data`` when present, else a
clip nvp generates. Prints a Markdown table: frames/s per stage (decode,
landmarks, crop + write, audio features, fit, raster) and end to end, plus the
store size per minute of video; then rasterization ms/frame at 256² and 512²
on the posed face model of the first store.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nvp.config import PreprocessConfig, load, to_object  # noqa: E402
from nvp.data.preprocess import preprocess  # noqa: E402
from nvp.data.store import SequenceStore  # noqa: E402

STAGES = ("decode", "landmarks", "crop_write", "features", "fit", "raster")


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def raster_ms(store: SequenceStore, size: int, batch: int, repeats: int = 3) -> float:
    from nvp.raster import render_uv_mask
    from nvp.tracking.face_model import FaceModel, template_face_model
    from nvp.tracking.fit import SequenceFit

    fm = store.attrs["face_model"]
    ds = store.path.parent / "face_model.npz"
    model = FaceModel.load(ds) if ds.exists() else template_face_model()
    assert model.hash == fm["hash"], "store was fitted with another face model"
    fit = SequenceFit(
        np.asarray(store["pose"][...]),
        np.asarray(store["identity"][...]),
        np.asarray(store["expression"][...]),
    )
    k = size / store.size
    verts = torch.as_tensor(fit.vertices(model, slice(0, batch)) * k)
    faces = torch.as_tensor(model.triangles, dtype=torch.int64)
    uv = torch.as_tensor(model.uv)
    labels = torch.as_tensor(model.triangle_labels)
    render_uv_mask(verts, faces, uv, labels, (size, size))
    t0 = time.perf_counter()
    for _ in range(repeats):
        render_uv_mask(verts, faces, uv, labels, (size, size))
    return (time.perf_counter() - t0) / repeats / len(verts) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("videos", nargs="*")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--out", default="/tmp/nvp-bench")
    ap.add_argument("--features", default="mel")
    args = ap.parse_args()
    videos = [Path(v) for v in args.videos]
    if not videos:
        hdtf = Path(os.environ.get("NVP_DATA", REPO.parent / "shared" / "data")) / "video" / "hdtf"
        videos = sorted(hdtf.glob("*.mp4"))
    out = Path(args.out)
    if not videos:
        from nvp.io.synthetic import make_talking_head

        out.mkdir(parents=True, exist_ok=True)
        videos = [make_talking_head(out / "synthetic.mp4", seconds=8, size=512)]
    shutil.rmtree(out / "ds", ignore_errors=True)
    cfg = to_object(
        load(
            PreprocessConfig,
            "preprocess/default.yaml",
            cli=[f"crop.size={args.size}", f"audio.name={args.features}"],
        )
    )
    print(f"torch threads: {torch.get_num_threads()}, crop {args.size}², features {args.features}")
    results = preprocess(videos, out / "ds", cfg)
    header = "| clip | frames | " + " | ".join(STAGES) + " | end to end | MB per minute |"
    print(header)
    print("|" + "---|" * (len(STAGES) + 4))
    for r in results:
        if r.status != "done":
            print(f"| {r.name} | {r.status}: {r.message} |")
            continue
        st = SequenceStore(r.store)
        t = st.attrs["timings"]
        fps = [f"{r.n_frames / t[s]:.0f}" if t.get(s) else "-" for s in STAGES]
        mb_min = du(st.path) / 1e6 / (st.n_frames / st.fps) * 60
        print(
            f"| {r.name} | {r.n_frames} | "
            + " | ".join(fps)
            + f" | {r.n_frames / t['total']:.1f} | {mb_min:.0f} |"
        )
    st = SequenceStore(results[0].store)
    print("\nrasterization ms/frame (posed face model of the first clip):")
    for size in (256, 512):
        for batch in (1, 16):
            print(f"  {size}², batch {batch:2d}: {raster_ms(st, size, batch):.2f} ms")


if __name__ == "__main__":
    main()
