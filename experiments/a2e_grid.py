"""Multi-speaker check of the generalized stage on GRID, per audio feature type.

    python experiments/a2e_grid.py [--features mel mfcc whisper] [--epochs 50] [--seeds 0 1]
                                   [--holdout bbaf2n brbk7n] [--out /tmp/nvp-a2e-grid]

For each feature type: preprocess the GRID clips of ``../shared/data/video/grid``
(training speakers into one dataset, the held-out speakers into another, with
the training corpus' face model), build the face model on the training
speakers, train Audio2ExpressionNet (``conf/a2e/paper.yaml``), fit each held-out
speaker's mapping in closed form on the first 60 % of their frames and report,
on their remaining 40 %: mouth (lip) vertex RMS in mm and the mouth-opening
correlation, against the mean-expression baseline. Writes ``results.md`` and
``results.json`` in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nvp.a2e.checkpoint import load_a2e  # noqa: E402
from nvp.a2e.config import A2EConfig, FitTargetConfig  # noqa: E402
from nvp.a2e.target import fit_target  # noqa: E402
from nvp.a2e.train import train_a2e  # noqa: E402
from nvp.config import FaceModelConfig, PreprocessConfig, load, to_object  # noqa: E402
from nvp.data.preprocess import preprocess, refit_store  # noqa: E402
from nvp.data.store import SequenceStore, find_stores, write_manifest  # noqa: E402
from nvp.nets.audio2expression import count_parameters  # noqa: E402
from nvp.tracking.basis import learn_basis  # noqa: E402
from nvp.tracking.face_model import FaceModel, template_face_model  # noqa: E402


def prepare(feature: str, clips: list[Path], holdout: set[str], out: Path) -> tuple[Path, Path]:
    train_ds, test_ds = out / feature / "train", out / feature / "heldout"
    base = ["crop.size=128", f"audio.name={feature}", "workers=2"]
    cfg = to_object(load(PreprocessConfig, "preprocess/default.yaml", cli=base))
    preprocess([c for c in clips if c.stem not in holdout], train_ds, cfg)
    fm_path = train_ds / "face_model.npz"
    if not fm_path.exists():
        fm_cfg = FaceModelConfig()
        stores = [SequenceStore(p) for p in find_stores(train_ds)]
        model, report = learn_basis(stores, template_face_model(), fm_cfg)
        print("\n".join(report.lines()))
        model.save(fm_path)
        for s in stores:
            refit_store(s.path, model, fm_cfg.tracking, fm_cfg.raster)
        write_manifest(train_ds)
    held = [*base, f"face_model={fm_path}", "split.train=0.6", "split.val=0.2", "split.test=0.2"]
    cfg = to_object(load(PreprocessConfig, "preprocess/default.yaml", cli=held))
    preprocess([c for c in clips if c.stem in holdout], test_ds, cfg)
    return train_ds, test_ds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--features", nargs="+", default=["mel", "mfcc", "whisper"])
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--holdout", nargs="+", default=["bbaf2n", "brbk7n"])
    ap.add_argument("--out", default="/tmp/nvp-a2e-grid")
    ap.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="key=value",
        help="A2E config overrides (e.g. data.samples_per_epoch=4000)",
    )
    ap.add_argument("--ridge", type=float, default=FitTargetConfig().ridge)
    args = ap.parse_args()
    data = Path(os.environ.get("NVP_DATA", REPO.parent / "shared" / "data"))
    clips = sorted((data / "video" / "grid").glob("*.mpg"))
    if not clips:
        sys.exit(f"no GRID clips under {data}/video/grid")
    out = Path(args.out)
    rows = []
    for feature in args.features:
        train_ds, test_ds = prepare(feature, clips, set(args.holdout), out)
        fm = FaceModel.load(train_ds / "face_model.npz")
        for seed in args.seeds:
            cfg = load(
                A2EConfig,
                "a2e/paper.yaml",
                cli=[
                    f"trainer.max_epochs={args.epochs}",
                    f"optim.decay_epochs={int(args.epochs * 0.6)}",
                    "trainer.accelerator=cpu",
                    "trainer.devices=1",
                    "trainer.enable_progress_bar=false",
                    f"seed={seed}",
                    f"out={out / feature / 'runs'}",
                    f"name=a2e-s{seed}",
                    *args.set,
                ],
            )
            t0 = time.perf_counter()
            run = train_a2e(train_ds, cfg)
            train_s = time.perf_counter() - t0
            bundle = load_a2e(run)
            for store_path in find_stores(test_ds):
                store = SequenceStore(store_path)
                res = fit_target(bundle, store, FitTargetConfig(ridge=args.ridge))
                r = res["report"]
                rows.append(
                    {
                        "feature": feature,
                        "seed": seed,
                        "speaker": store.name,
                        "K": fm.n_components,
                        "train_seconds": round(train_s, 1),
                        "parameters": count_parameters(bundle.net),
                        **asdict(r),
                    }
                )
                print(json.dumps(rows[-1]))
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    lines = [
        "| feature | speaker | seeds | mouth RMS mm (model) | mouth RMS mm (mean expr.) | "
        "all-vertex RMS mm (model / mean) | mouth-opening r |",
        "|---|---|---|---|---|---|---|",
    ]
    for feature in args.features:
        for spk in sorted({r["speaker"] for r in rows}):
            sel = [r for r in rows if r["feature"] == feature and r["speaker"] == spk]
            if not sel:
                continue

            def m(key, sel=sel):
                return float(np.mean([r[key] for r in sel]))

            lines.append(
                f"| {feature} | {spk} | {len(sel)} | {m('vertex_rms_mouth_mm'):.3f} | "
                f"{m('baseline_vertex_rms_mouth_mm'):.3f} | {m('vertex_rms_mm'):.3f} / "
                f"{m('baseline_vertex_rms_mm'):.3f} | {m('mouth_opening_r'):.3f} |"
            )
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
