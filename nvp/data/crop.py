"""Face crops: the per-frame crop squares of a clip and the affine maps between a source
frame and its square crop (used by preprocessing to cut the crops and by reenactment to
paste rendered faces back into the source frames)."""

from __future__ import annotations

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d


def face_track(landmarks: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed face centre (N, 2) px and size (N,) px (larger side of the landmark box)."""
    lo = landmarks[:, :, :2].min(1)
    hi = landmarks[:, :, :2].max(1)
    centre = (lo + hi) / 2
    size = (hi - lo).max(1)
    if sigma > 0 and len(centre) > 1:
        centre = gaussian_filter1d(centre, sigma, axis=0, mode="nearest")
        size = gaussian_filter1d(size, sigma, mode="nearest")
    return centre, size


def crop_squares(landmarks: np.ndarray, *, scale: float, mode: str, sigma: float) -> np.ndarray:
    """Per-frame crop squares ``[x0, y0, side]`` (N, 3) float32 in source pixels.

    ``fixed``: the smallest square containing every frame's square ``centre ± scale·size/2``
    (one square for the clip); ``track``: a square of side ``scale · median size`` centred on
    the smoothed face centre of each frame.
    """
    centre, size = face_track(landmarks, sigma)
    n = len(centre)
    if mode == "fixed":
        half = scale * size[:, None] / 2
        lo = (centre - half).min(0)
        hi = (centre + half).max(0)
        side = float((hi - lo).max())
        c = (lo + hi) / 2
        sq = np.array([c[0] - side / 2, c[1] - side / 2, side], np.float32)
        return np.tile(sq, (n, 1))
    if mode == "track":
        side = float(scale * np.median(size))
        return np.concatenate([centre - side / 2, np.full((n, 1), side)], axis=1).astype(np.float32)
    raise ValueError(f"unknown crop mode {mode!r} (fixed, track)")


def crop_matrix(square: np.ndarray, size: int) -> np.ndarray:
    """2×3 affine matrix (pixel-centre convention, as ``cv2.warpAffine`` uses) mapping a source
    frame to the ``size``² crop of ``square = [x0, y0, side]``."""
    x0, y0, side = (float(v) for v in square)
    k = size / side
    return np.array(
        [[k, 0.0, 0.5 * k - 0.5 - k * x0], [0.0, k, 0.5 * k - 0.5 - k * y0]], np.float64
    )


def landmarks_to_crop(landmarks: np.ndarray, squares: np.ndarray, size: int) -> np.ndarray:
    """Source-frame landmarks (N, V, 3) px to crop pixels (continuous convention), z scaled too."""
    k = size / squares[:, 2]
    out = landmarks.astype(np.float32).copy()
    out[..., 0] = (out[..., 0] - squares[:, None, 0]) * k[:, None]
    out[..., 1] = (out[..., 1] - squares[:, None, 1]) * k[:, None]
    out[..., 2] = out[..., 2] * k[:, None]
    return out


def cut_crop(frame: np.ndarray, square: np.ndarray, size: int) -> np.ndarray:
    """The ``size``² RGB crop of one frame (area-averaged when shrinking, edges replicated)."""
    x0, y0, side = (float(v) for v in square)
    shrink = side / size
    if shrink >= 2:  # pre-shrink by an integer factor with area averaging (no aliasing)
        f = int(shrink)
        h, w = frame.shape[:2]
        frame = cv2.resize(frame, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA)
        sx, sy = w / frame.shape[1], h / frame.shape[0]
        x0, y0, side = x0 / sx, y0 / sy, side / sx
    m = crop_matrix(np.array([x0, y0, side]), size)
    return cv2.warpAffine(
        frame, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
