"""Texture-transfer consistency of the UV maps of every store in a dataset.

    python experiments/uv_consistency.py DATASET_DIR [--pairs 6] [--gap 2]

For each store: face-region PSNR (dB) of a frame rendered from its own
unwrapped texture (``self``), of frame t's texture rendered through the UV map of
frame t+gap (``near``) and of a far frame (``far``), the same with the UV map
shifted by 5 % of the crop (``shifted``: what misregistered UVs score), and the
two frames compared directly without warping (``still``). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nvp.data.consistency import consistency_report
from nvp.data.store import SequenceStore, find_stores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("dataset")
    ap.add_argument("--pairs", type=int, default=6)
    ap.add_argument("--gap", type=int, default=2)
    args = ap.parse_args()
    print("| store | K | self | near | far | shifted | still |")
    print("|---|---|---|---|---|---|---|")
    for p in find_stores(args.dataset):
        st = SequenceStore(p)
        r = consistency_report(st, n_pairs=args.pairs, gap=args.gap)
        k = st.attrs["face_model"]["n_components"]
        print(
            f"| {st.name} | {k} | {r.self_psnr:.1f} | {r.neighbour_psnr:.1f} | "
            f"{r.far_psnr:.1f} | {r.shifted_psnr:.1f} | {r.still_psnr:.1f} |"
        )


if __name__ == "__main__":
    main()
