"""Per clip of a dataset: how noisy its tracking is and how its audio and mouth line up.

    python experiments/lips_clips.py DATASET [--out clips.md] [--max-lag 12]

Two properties of the training / target clips limit what the Audio2Expression stage can learn
from them, and neither shows in a loss curve:

* **landmark jitter**: frame-to-frame noise of the tracked mouth opening, as the standard
  deviation of its second difference ``o[t] - (o[t-1] + o[t+1]) / 2`` relative to the standard
  deviation of the opening itself (0 = smooth motion; white noise gives about 1.2), and the
  same for the stable pose points (eye corners, nose bridge; relative to the eye distance);
* **audio-mouth timing**: the correlation of the 2-D mouth opening (inner-lip distance / eye
  distance, from the store's landmarks) with the audio's log band energy (300-3000 Hz), both
  high-passed (2-s moving average removed), at lags L = -max_lag ... +max_lag frames, with
  ``r(L) = corr(opening[t], energy[t + L])``: the best lag (L > 0: the audio comes after the
  mouth) and its r, and r at L = 0.

Writes a Markdown table (and prints it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.ndimage import uniform_filter1d
from scipy.signal import stft

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nvp.config import STABLE_POINTS, atomic_write_text  # noqa: E402
from nvp.data.store import SequenceStore, find_stores  # noqa: E402
from nvp.metrics.sync import lagged_correlation  # noqa: E402
from nvp.reenact.lips import fill_nan, mouth_opening_2d  # noqa: E402
from nvp.tracking import topology  # noqa: E402
from nvp.tracking.landmarks import FACE_MISSING  # noqa: E402


def band_energy(audio: np.ndarray, sr: int, n_frames: int, fps: float) -> np.ndarray:
    """Log energy of 300-3000 Hz per video frame: (n_frames,)."""
    hop = round(sr / fps)
    f, _, z = stft(audio, sr, nperseg=2 * hop, noverlap=hop, boundary=None, padded=True)
    band = (f >= 300) & (f <= 3000)
    e = np.log((np.abs(z[band]) ** 2).sum(0) + 1e-8)
    e = np.interp(np.arange(n_frames), np.arange(len(e)) + 0.5, e)
    return e


def high_pass(x: np.ndarray, fps: float, seconds: float = 2.0) -> np.ndarray:
    return x - uniform_filter1d(x, max(1, int(seconds * fps)), mode="nearest")


def second_diff_ratio(x: np.ndarray) -> float:
    d = x[1:-1] - 0.5 * (x[:-2] + x[2:])
    return float(d.std() / x.std()) if x.std() > 0 else float("nan")


def clip_row(store: SequenceStore, max_lag: int) -> dict:
    lms = np.asarray(store["landmarks"][...], np.float64)
    ok = np.asarray(store["face_flag"][...]) != FACE_MISSING
    op = mouth_opening_2d(lms, "mediapipe", topology.EYE_CORNERS)
    op[~ok] = np.nan
    op = fill_nan(op)
    a, b = topology.EYE_CORNERS
    iod = np.nanmedian(np.linalg.norm(lms[:, a, :2] - lms[:, b, :2], axis=-1))
    pts = lms[:, list(STABLE_POINTS), :2] / iod
    d2 = pts[1:-1] - 0.5 * (pts[:-2] + pts[2:])
    pose_jitter = float(np.sqrt((d2**2).sum(-1).mean()))
    sr = int(store.attrs["sample_rate"])
    audio = np.asarray(store["audio"][...]).astype(np.float32) / 32768.0
    fps = store.fps
    e = band_energy(audio, sr, len(op), fps)
    r = lagged_correlation(high_pass(op, fps), high_pass(e, fps), max_lag)
    k = int(np.nanargmax(r)) if np.isfinite(r).any() else max_lag
    return {
        "clip": store.name,
        "frames": len(op),
        "opening_jitter": second_diff_ratio(op),
        "pose_jitter": pose_jitter,
        "best_lag": k - max_lag,
        "r_best": float(r[k]),
        "r0": float(r[max_lag]),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("dataset")
    ap.add_argument("--out", help="Markdown file to write")
    ap.add_argument("--max-lag", type=int, default=12)
    args = ap.parse_args(argv)
    rows = [clip_row(SequenceStore(p), args.max_lag) for p in find_stores(args.dataset)]
    lines = [
        f"Clips of `{args.dataset}`: tracking jitter and audio-mouth timing "
        f"(`python experiments/lips_clips.py {args.dataset}`).",
        "",
        "| clip | frames | opening jitter | pose-point jitter (/ eye dist.) | best lag | "
        "r (best lag) | r (lag 0) |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['clip']} | {r['frames']} | {r['opening_jitter']:.2f} | "
            f"{r['pose_jitter']:.4f} | {r['best_lag']:+d} | {r['r_best']:.2f} | {r['r0']:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        atomic_write_text(Path(args.out), text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
