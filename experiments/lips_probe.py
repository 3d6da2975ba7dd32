"""The target side of lip motion: map fits and smoothing on one A2E checkpoint, no training.

    python experiments/lips_probe.py A2E_CKPT_OR_RUN TARGET_STORE [--voices DIR ...]
        [--smooth 0 1 2] [--out probe.md]

For each fit of the target's map (``nvp fit-target`` settings: the paper's plain least squares,
then with an offset, with the lip gain, in vertex space, with less ridge) and each reenactment
smoothing sigma (frames), the lip motion of the target's test split driven by its own audio
(r, best lag, amplitude against the tracked opening; face model, mm) and the amplitude of every
voice of ``--voices`` against the target's tracked opening (:func:`nvp.reenact.lips.
a2e_lip_probe`). Writes a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nvp.a2e.config import FitTargetConfig  # noqa: E402
from nvp.config import atomic_write_text  # noqa: E402
from nvp.reenact.lips import a2e_lip_probe  # noqa: E402
from nvp.training import run_checkpoint  # noqa: E402

FITS = {
    "paper: least squares, ridge 1 to the mean map": dict(intercept=False, gain="none"),
    "+ offset (intercept)": dict(gain="none"),
    "+ offset + lip gain (default)": {},
    "+ offset + lip gain, ridge 0.1": dict(ridge=0.1),
    "vertex mode + offset + lip gain": dict(mode="vertex"),
    "paper, ridge 0.01": dict(intercept=False, gain="none", ridge=0.01),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("a2e")
    ap.add_argument("store")
    ap.add_argument("--voices", nargs="*", default=[])
    ap.add_argument("--smooth", nargs="+", type=float, default=[0.0, 1.0, 2.0])
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    ckpt = run_checkpoint(args.a2e)  # a run directory: its best validation state
    cache: dict = {}
    lines = [
        f"Target map and smoothing on `{ckpt}`, target `{args.store}` (test split, own audio; "
        f"voices: {', '.join(args.voices) or 'none'}).",
        "",
        "| fit | smoothing σ | r | best lag | r (best) | amplitude | amplitude 5-95 % | gain | "
        "voices amplitude min | mean |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, kw in FITS.items():
        for sigma in args.smooth:
            if sigma and kw != {}:
                continue  # smoothing only for the default fit
            r = a2e_lip_probe(
                ckpt, args.store, args.voices, FitTargetConfig(**kw), sigma, cache=cache
            )
            o = r["own"]
            lines.append(
                f"| {name} | {sigma:g} | {o['r0']:.2f} | {o['best_lag']:+.0f} | "
                f"{o['r_best']:.2f} | {o['std_ratio']:.2f} | {o['range_ratio']:.2f} | "
                f"{r['gain']:.2f} | {r['voices_std_ratio_min']:.2f} | "
                f"{r['voices_std_ratio_mean']:.2f} |"
            )
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if args.out:
        atomic_write_text(Path(args.out), text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
