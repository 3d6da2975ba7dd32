"""Renderer quality per CPU-minute: time-to-quality curves of renderer variants on one store.

    python experiments/render_curves.py --store DATASET/lieu_60s.zarr --out /tmp/nvp-curves \\
        --minutes 60 --every 5 --threads 1 \\
        --variant dilated: \\
        --variant strided:renderer.conv=strided \\
        [--variant NAME:key=value,key=value ...] [--base render/cpu.yaml] [--eval-frames 60]

Each variant is ``NAME:OVERRIDES`` (comma-separated ``key=value`` on top of ``--base``). It is
trained for ``--minutes`` of wall-clock time (``trainer.max_time``, validation included, at
``--threads`` torch threads) while a callback saves the weights every ``--every`` minutes.
Afterwards every snapshot is evaluated on the store's ``--split`` (evenly spread
``--eval-frames`` frames, tracked expressions, the real background): PSNR over the frame, the
face and the mouth region (lips and mouth interior), the face sharpness ratio (variance of
the Laplacian, rendered / real) and SSIM, through :func:`nvp.metrics.image.image_metrics`.

Writes ``OUT/NAME/curve.csv`` per variant (a finished variant is skipped when run again, so
variants can run in parallel processes on the same ``--out``), then ``OUT/curves.csv``,
``OUT/curves.md`` (the last point of each variant) and ``OUT/curves.png`` over every variant
found in ``OUT``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402

from nvp.config import load  # noqa: E402
from nvp.data.store import SequenceStore  # noqa: E402
from nvp.metrics.image import image_metrics, update_image_metrics  # noqa: E402
from nvp.reenact.target import load_renderer  # noqa: E402
from nvp.render.config import RenderConfig  # noqa: E402
from nvp.render.data import split_frames  # noqa: E402
from nvp.render.train import train_renderer  # noqa: E402
from nvp.tracking.topology import LABEL_MOUTH  # noqa: E402

METRICS = [
    ("psnr", "PSNR (dB)"),
    ("psnr_face", "face PSNR (dB)"),
    ("psnr_mouth", "mouth PSNR (dB)"),
    ("sharpness", "face sharpness (rendered / real)"),
]


class Snapshots(pl.Callback):
    """Save the module's weights every ``every_s`` seconds of wall-clock time since the start
    of training (and at its end, unless no step was taken since the last one) as
    ``DIR/t{minutes}.ckpt``, with the step count, in the layout of a target's
    ``renderer.ckpt`` (``load_renderer`` reads it)."""

    def __init__(self, out: Path, every_s: float) -> None:
        self.out, self.every = out, every_s
        self.t0 = 0.0
        self.next = every_s
        self.saved_step = -1

    def _save(self, trainer: pl.Trainer, module: pl.LightningModule, elapsed: float) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        state = {
            "state_dict": module.state_dict(),
            "hyper_parameters": dict(module.hparams),
            "minutes": elapsed / 60,
            "step": trainer.global_step,
        }
        torch.save(state, self.out / f"t{elapsed / 60:07.2f}.ckpt")
        self.saved_step = trainer.global_step

    def on_train_start(self, trainer, module) -> None:
        self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, module, *args) -> None:
        elapsed = time.perf_counter() - self.t0
        if elapsed >= self.next:
            self._save(trainer, module, elapsed)
            self.next += self.every

    def on_train_end(self, trainer, module) -> None:
        if trainer.global_step != self.saved_step:
            self._save(trainer, module, time.perf_counter() - self.t0)


@torch.inference_mode()
def evaluate_snapshot(path: Path, store: SequenceStore, frames: np.ndarray, batch: int) -> dict:
    """Image metrics of one snapshot on ``frames`` (tracked UVs, real backgrounds)."""
    module = load_renderer(path)  # a snapshot has the lean renderer.ckpt layout
    meta = torch.load(path, map_location="cpu", weights_only=True)
    expressions = np.asarray(store["expression"][...], np.float32)
    metrics = image_metrics()
    for b0 in range(0, len(frames), batch):
        idx = frames[b0 : b0 + batch]
        image = torch.from_numpy(np.stack([np.asarray(store["frames"][int(t)]) for t in idx]))
        image = image.permute(0, 3, 1, 2).float() / 127.5 - 1
        uv = torch.from_numpy(np.stack([np.asarray(store["uv"][int(t)]) for t in idx])).float()
        mask = torch.from_numpy(np.stack([np.asarray(store["mask"][int(t)]) for t in idx]))
        face = (mask > 0).float()[:, None]
        mouth = (mask == LABEL_MOUTH).float()[:, None]
        out = module(uv, image, face, torch.from_numpy(expressions[idx]))["final"]
        pred = ((out + 1) / 2).clamp(0, 1)
        update_image_metrics(metrics, pred, (image + 1) / 2, face, mouth)
    vals = {k: float(v) for k, v in metrics.compute().items()}
    return {"minutes": round(meta["minutes"], 2), "step": meta["step"], **vals}


def run_variant(args: argparse.Namespace, name: str, overrides: list[str]) -> None:
    out = Path(args.out) / name
    if (out / "curve.csv").is_file():
        print(f"{name}: done before ({out / 'curve.csv'})")
        return
    snaps = out / "snapshots"
    if not list(snaps.glob("t*.ckpt")) or not (out / "trained").is_file():
        cfg = load(
            RenderConfig,
            args.base,
            cli=[
                "trainer.max_epochs=100000",
                f"trainer.max_time=00:{int(args.minutes) // 60:02d}:"
                f"{int(args.minutes) % 60:02d}:{round(args.minutes % 1 * 60):02d}",
                "trainer.enable_progress_bar=false",
                f"data.max_val_frames={args.val_frames}",
                f"out={out / 'runs'}",
                f"name={name}",
                *overrides,
            ],
        )
        t0 = time.perf_counter()
        run = train_renderer(args.store, cfg, callbacks=[Snapshots(snaps, args.every * 60)])
        (out / "trained").write_text(
            json.dumps({"run": str(run), "wall_s": round(time.perf_counter() - t0)})
        )
    store = SequenceStore(args.store)
    frames = split_frames(store, args.split)
    if len(frames) > args.eval_frames:
        frames = frames[np.linspace(0, len(frames) - 1, args.eval_frames).round().astype(int)]
    rows = []
    snaps_all = sorted(snaps.glob("t*.ckpt"))
    keep = set(snaps_all[:: args.eval_stride]) | {snaps_all[-1]}
    for snap in [p for p in snaps_all if p in keep]:
        row = {"variant": name, **evaluate_snapshot(snap, store, frames, args.batch)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    with open(out / "curve.csv.tmp", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (out / "curve.csv.tmp").replace(out / "curve.csv")


def summarise(out: Path) -> None:
    rows = []
    for p in sorted(out.glob("*/curve.csv")):
        with open(p) as f:
            rows += list(csv.DictReader(f))
    if not rows:
        return
    with open(out / "curves.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(dict.fromkeys(r["variant"] for r in rows))
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4.2 * len(METRICS), 3.6))
    for ax, (key, label) in zip(axes, METRICS, strict=True):
        for v in variants:
            pts = [(float(r["minutes"]), float(r[key])) for r in rows if r["variant"] == v]
            ax.plot(*zip(*pts, strict=True), marker="o", ms=3, label=v)
        ax.set_xlabel("training wall-clock (min)")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    lines = [
        "| variant | minutes | steps | PSNR | face PSNR | mouth PSNR | sharpness | SSIM |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for v in variants:
        r = [r for r in rows if r["variant"] == v][-1]
        lines.append(
            f"| {v} | {float(r['minutes']):.0f} | {r['step']} | {float(r['psnr']):.2f} | "
            f"{float(r['psnr_face']):.2f} | {float(r['psnr_mouth']):.2f} | "
            f"{float(r['sharpness']):.2f} | {float(r['ssim']):.3f} |"
        )
    (out / "curves.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--store", required=True, help="a sequence store with a face model")
    ap.add_argument("--out", required=True)
    ap.add_argument("--variant", action="append", default=[], metavar="NAME:k=v,k=v")
    ap.add_argument("--base", default="render/cpu.yaml", help="config the overrides apply to")
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--every", type=float, default=5.0, help="minutes between snapshots")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--eval-frames", type=int, default=60)
    ap.add_argument("--val-frames", type=int, default=8, help="data.max_val_frames")
    ap.add_argument("--batch", type=int, default=4, help="evaluation batch")
    ap.add_argument(
        "--eval-stride", type=int, default=1, help="evaluate every n-th snapshot (and the last)"
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for spec in args.variant:
        name, _, over = spec.partition(":")
        run_variant(args, name, [o for o in over.split(",") if o])
    summarise(Path(args.out))


if __name__ == "__main__":
    main()
