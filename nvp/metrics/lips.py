"""Lip-motion measures: a predicted (audio-driven) mouth against a real (tracked) one.

Two kinds of input:

* **opening curves**: 1-D float arrays over the video frames (25 fps in this project), e.g.
  the mean inner-lip distance of the face model in mm (:func:`nvp.metrics.mouth_opening_mm`)
  or the 2-D inner-lip landmark distance divided by the eye-corner distance (unitless). A
  prediction and its reference are paired frame by frame, so they must have the same length.
* **vertex sequences**: (N, V, 3) face-model vertices in mm, for the 3-D talking-head
  measures LVE (FaceFormer, CodeTalker) and FDD (CodeTalker).

Missing frames (no face found) are NaN and are ignored *pairwise*: a frame counts only where
both curves are finite (for vertices: where every used coordinate of both is finite).
Structural problems (wrong rank, mismatched lengths, too few frames for the requested
measure, bad parameters) raise ``ValueError``; data that leave a measure undefined (too few
finite frames, a constant curve) give NaN instead, so one face-less clip does not stop a
report.

All results are plain Python ``float`` / ``int`` / ``bool`` / ``list`` (JSON-serialisable;
NaN allowed, as ``json.dumps(..., allow_nan=True)`` writes it).

Lag convention (:func:`lag_correlation`): ``r(L) = corr(pred[t + L], real[t])``; L > 0 means
the prediction is late (what the real mouth does at frame t the prediction does at t + L).
Note that :func:`nvp.metrics.sync.lagged_correlation` (mouth vs audio) uses the opposite
pairing, ``corr(mouth[t], envelope[t + L])``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: Frames a correlation needs (fewer: NaN).
MIN_CORR_FRAMES = 3
#: Slack for ``floor`` / ``ceil`` of ``seconds * fps`` (0.44 s * 25 = 11.000000000000002).
_FRAME_EPS = 1e-6


# --------------------------------------------------------------------------- helpers


def _curve(x: np.ndarray, name: str, min_len: int = 1) -> np.ndarray:
    """``x`` as a 1-D float64 array of at least ``min_len`` frames."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D curve over frames, got shape {a.shape}")
    if len(a) < min_len:
        raise ValueError(f"{name} has {len(a)} frames; at least {min_len} are needed")
    return a


def _pair(pred: np.ndarray, real: np.ndarray, min_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Two 1-D float64 curves of the same length (at least ``min_len`` frames)."""
    p = _curve(pred, "pred")
    r = _curve(real, "real")
    if len(p) != len(r):
        raise ValueError(
            f"pred and real must have the same number of frames, got {len(p)} and {len(r)}"
        )
    if len(p) < min_len:
        raise ValueError(f"the curves have {len(p)} frames; at least {min_len} are needed")
    return p, r


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r over the frames where both are finite; NaN for < 3 frames or a constant side."""
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if len(a) < MIN_CORR_FRAMES or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    a = a - a.mean()
    b = b - b.mean()
    r = float(np.dot(a, b) / math.sqrt(float(np.dot(a, a)) * float(np.dot(b, b))))
    return min(1.0, max(-1.0, r))


def _ratio(num: float, den: float) -> float:
    """``num / den``; NaN where the denominator is 0 or either side is NaN."""
    if not (math.isfinite(num) and math.isfinite(den)) or den == 0:
        return math.nan
    return num / den


def _vertices(
    pred: np.ndarray, real: np.ndarray, index: np.ndarray | Sequence[int], name: str
) -> tuple[np.ndarray, np.ndarray]:
    """The ``index`` vertices of two (N, V, 3) sequences, frames with a non-finite entry in
    either dropped: two (N', K, 3) float64 arrays."""
    p = np.asarray(pred, dtype=np.float64)
    r = np.asarray(real, dtype=np.float64)
    if p.ndim != 3 or p.shape[-1] != 3:
        raise ValueError(f"pred_vertices must be (N, V, 3), got shape {p.shape}")
    if p.shape != r.shape:
        raise ValueError(
            f"pred_vertices and real_vertices must have the same shape, got {p.shape} and {r.shape}"
        )
    idx = np.asarray(index)
    if idx.ndim != 1 or len(idx) == 0 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"{name} must be a non-empty 1-D integer index, got {idx!r}")
    if idx.min() < -p.shape[1] or idx.max() >= p.shape[1]:
        raise ValueError(f"{name} is out of range for {p.shape[1]} vertices")
    p, r = p[:, idx], r[:, idx]
    ok = np.isfinite(p).all(axis=(1, 2)) & np.isfinite(r).all(axis=(1, 2))
    return p[ok], r[ok]


# --------------------------------------------------------------------------- opening curves


def lag_correlation(pred: np.ndarray, real: np.ndarray, max_lag: int = 5) -> dict[str, Any]:
    """Pearson correlation of two opening curves at lags -max_lag … +max_lag frames.

    ``r(L) = corr(pred[t + L], real[t])`` over the frames t where both indices exist and both
    values are finite; **L > 0 means the prediction is late** (it shows at t + L what the real
    mouth shows at t). Each r needs 3 such frames and two non-constant sides, else it is NaN.

    Args:
        pred: (N,) predicted opening (any unit; the same as ``real``'s is not required:
            Pearson r is scale-free).
        real: (N,) reference opening.
        max_lag: largest |lag| in frames (>= 0); N must be at least ``max_lag + 3``.

    Returns:
        ``r0`` (r at lag 0), ``best_lag`` (the lag of the largest r, an int; NaN when every
        r is NaN), ``r_best``, ``lags`` (the 2·max_lag+1 lags, ascending) and ``r`` (r at
        each lag, same order), ``n_frames`` (frames where both are finite, lag 0).
    """
    if isinstance(max_lag, bool) or int(max_lag) != max_lag or max_lag < 0:
        raise ValueError(f"max_lag must be a non-negative integer, got {max_lag!r}")
    max_lag = int(max_lag)
    p, r = _pair(pred, real, max_lag + MIN_CORR_FRAMES)
    n = len(p)
    lags = list(range(-max_lag, max_lag + 1))
    curve: list[float] = []
    for lag in lags:
        if lag >= 0:
            a, b = p[lag:], r[: n - lag]
        else:
            a, b = p[: n + lag], r[-lag:]
        curve.append(_pearson(a, b))
    r0 = curve[max_lag]
    if all(math.isnan(c) for c in curve):
        best_lag: int | float = math.nan
        r_best = math.nan
    else:
        k = int(np.nanargmax(curve))
        best_lag, r_best = lags[k], curve[k]
    return {
        "r0": r0,
        "best_lag": best_lag,
        "r_best": r_best,
        "lags": lags,
        "r": curve,
        "n_frames": int((np.isfinite(p) & np.isfinite(r)).sum()),
    }


def amplitude_ratio(
    pred: np.ndarray,
    real: np.ndarray,
    low_q: float = 5.0,
    high_q: float = 95.0,
    paired: bool = True,
) -> dict[str, float]:
    """How large the predicted mouth motion is relative to the real one.

    Over the frames where both curves are finite (``paired``), or over each curve's own
    finite frames (``paired=False``: two recordings of any lengths, e.g. another voice
    against the target's own motion): the standard deviation (population, ddof=0) of each
    and the percentile range ``P[high_q] - P[low_q]`` of each (numpy's linear interpolation),
    in the curves' unit.

    Args:
        pred: (N,) predicted opening.
        real: (N,) reference opening, same unit ((M,) when not paired).
        low_q, high_q: percentiles of the range, 0 <= low_q < high_q <= 100.
        paired: compare frame by frame (same length) or as distributions.

    Returns:
        ``std_ratio`` (pred / real), ``range_ratio`` (pred / real), ``pred_std``,
        ``real_std``, ``pred_range``, ``real_range``, ``n_frames`` (frames used). Ratios are
        NaN when the real side is 0; everything is NaN with fewer than 2 finite frames.
    """
    if not 0 <= low_q < high_q <= 100:
        raise ValueError(f"need 0 <= low_q < high_q <= 100, got {low_q} and {high_q}")
    if paired:
        p, r = _pair(pred, real, 2)
        ok = np.isfinite(p) & np.isfinite(r)
        p, r = p[ok], r[ok]
    else:
        p, r = _curve(pred, "pred"), _curve(real, "real")
        p, r = p[np.isfinite(p)], r[np.isfinite(r)]
    if min(len(p), len(r)) < 2:
        nan = math.nan
        stats = {"pred_std": nan, "real_std": nan, "pred_range": nan, "real_range": nan}
    else:
        pl, ph = np.percentile(p, [low_q, high_q])
        rl, rh = np.percentile(r, [low_q, high_q])
        stats = {
            "pred_std": float(p.std()),
            "real_std": float(r.std()),
            "pred_range": float(ph - pl),
            "real_range": float(rh - rl),
        }
    return {
        "std_ratio": _ratio(stats["pred_std"], stats["real_std"]),
        "range_ratio": _ratio(stats["pred_range"], stats["real_range"]),
        **stats,
        "n_frames": len(p),
    }


def open_closed_fractions(
    curve: np.ndarray, reference: np.ndarray, closed_q: float = 10.0, open_q: float = 90.0
) -> dict[str, float]:
    """How often a mouth is closed / wide open, by the reference's own levels.

    The closed level is the reference's ``closed_q``-th percentile and the open level its
    ``open_q``-th (numpy's linear interpolation, finite frames only). The fractions count the
    finite frames of ``curve`` at or below the closed level and at or above the open level;
    the reference's own fractions are ≈ closed_q / 100 and (100 - open_q) / 100 by
    construction (more with ties). The two curves need not be the same length (they are
    compared as distributions, not frame by frame); pass pairwise-masked curves to compare
    the same frames (:func:`lip_motion_summary` does).

    Args:
        curve: (N,) opening to classify, e.g. the prediction.
        reference: (M,) opening defining the levels, e.g. the tracked one, same unit.
        closed_q, open_q: percentiles, 0 <= closed_q < open_q <= 100.

    Returns:
        ``closed_level``, ``open_level`` (curve unit), ``closed_fraction``, ``open_fraction``
        (of ``curve``), ``ref_closed_fraction``, ``ref_open_fraction``, ``n_frames`` and
        ``n_ref_frames`` (finite frames used). NaN where a side has no finite frame.
    """
    if not 0 <= closed_q < open_q <= 100:
        raise ValueError(f"need 0 <= closed_q < open_q <= 100, got {closed_q} and {open_q}")
    c = _curve(curve, "curve")
    ref = _curve(reference, "reference")
    c = c[np.isfinite(c)]
    ref = ref[np.isfinite(ref)]
    nan = math.nan
    if len(ref) == 0:
        lo = hi = nan
    else:
        lo, hi = (float(v) for v in np.percentile(ref, [closed_q, open_q]))

    def frac(x: np.ndarray, mask: np.ndarray) -> float:
        return float(mask.mean()) if len(x) and math.isfinite(lo) else nan

    return {
        "closed_level": lo,
        "open_level": hi,
        "closed_fraction": frac(c, c <= lo),
        "open_fraction": frac(c, c >= hi),
        "ref_closed_fraction": frac(ref, ref <= lo),
        "ref_open_fraction": frac(ref, ref >= hi),
        "n_frames": len(c),
        "n_ref_frames": len(ref),
    }


def bilabial_closure_rate(
    opening: np.ndarray,
    segments: Sequence[tuple[float, float]],
    fps: float,
    closed_level: float,
    tolerance: int = 1,
) -> dict[str, Any]:
    """Fraction of bilabial phones (/p/ /b/ /m/) during which the lips close.

    A segment ``(start_s, end_s)`` is evaluated over the frames
    ``floor(start_s·fps) - tolerance … ceil(end_s·fps) + tolerance`` (inclusive, clipped to
    the curve; frame i is at i / fps seconds; a 1e-6-frame slack absorbs float error in
    ``seconds·fps``) and counts as closed when the smallest finite opening there is
    ``<= closed_level``. Segments whose own frames ``floor(start_s·fps) … ceil(end_s·fps)``
    lie wholly outside the curve are skipped (``n_outside``), as are those whose window has
    no finite frame (``n_no_face``).

    Args:
        opening: (N,) mouth opening, NaN where no face.
        segments: (start_s, end_s) pairs in seconds, start_s <= end_s.
        fps: frames per second of ``opening``.
        closed_level: opening (curve unit) at or below which the mouth is closed, e.g.
            ``open_closed_fractions(...)["closed_level"]`` of the tracked curve.
        tolerance: extra frames on each side of the segment (>= 0), for phone-alignment and
            tracking jitter.

    Returns:
        ``rate`` (n_closed / n_evaluated; NaN when nothing was evaluated), ``n_segments``
        (given), ``n_evaluated``, ``n_closed``, ``n_outside``, ``n_no_face`` and ``closed``:
        one entry per given segment, in order, ``True`` / ``False``, or ``None`` if skipped.
    """
    o = _curve(opening, "opening")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if isinstance(tolerance, bool) or int(tolerance) != tolerance or tolerance < 0:
        raise ValueError(f"tolerance must be a non-negative integer (frames), got {tolerance!r}")
    if not math.isfinite(closed_level):
        raise ValueError(f"closed_level must be finite, got {closed_level}")
    tolerance = int(tolerance)
    n = len(o)
    closed: list[bool | None] = []
    n_outside = n_no_face = 0
    for k, seg in enumerate(segments):
        if len(seg) != 2:
            raise ValueError(f"segment {k} must be (start_s, end_s), got {seg!r}")
        start, end = float(seg[0]), float(seg[1])
        if not (math.isfinite(start) and math.isfinite(end)) or start > end:
            raise ValueError(f"segment {k} must have finite start_s <= end_s, got {seg!r}")
        first = math.floor(start * fps + _FRAME_EPS)
        last = math.ceil(end * fps - _FRAME_EPS)
        if last < 0 or first > n - 1:
            n_outside += 1
            closed.append(None)
            continue
        lo = max(0, first - tolerance)
        hi = min(n - 1, last + tolerance)
        window = o[lo : hi + 1]
        window = window[np.isfinite(window)]
        if len(window) == 0:
            n_no_face += 1
            closed.append(None)
            continue
        closed.append(bool(window.min() <= closed_level))
    n_evaluated = sum(c is not None for c in closed)
    n_closed = sum(c is True for c in closed)
    return {
        "rate": n_closed / n_evaluated if n_evaluated else math.nan,
        "n_segments": len(closed),
        "n_evaluated": n_evaluated,
        "n_closed": n_closed,
        "n_outside": n_outside,
        "n_no_face": n_no_face,
        "closed": closed,
    }


def lip_motion_summary(
    pred: np.ndarray,
    real: np.ndarray,
    max_lag: int = 5,
    closed_q: float = 10.0,
    open_q: float = 90.0,
) -> dict[str, float | int]:
    """:func:`lag_correlation`, :func:`amplitude_ratio` and :func:`open_closed_fractions` of
    a prediction against its reference, as one flat JSON-friendly dict.

    The correlations ignore NaN per lag; the amplitudes and fractions use the frames where
    both curves are finite (the levels come from the real curve on those frames).

    Args:
        pred: (N,) predicted opening.
        real: (N,) reference opening, same unit; N >= max_lag + 3.
        max_lag: largest |lag| in frames (positive lag = prediction late).
        closed_q, open_q: percentiles of the real curve for the closed / open levels.

    Returns:
        ``n_frames`` (N), ``n_valid`` (frames where both are finite), ``r0``, ``best_lag``,
        ``r_best``, ``std_ratio``, ``range_ratio``, ``closed_level``, ``open_level``,
        ``closed_fraction``, ``open_fraction`` (of pred), ``ref_closed_fraction``,
        ``ref_open_fraction`` (of real): Python ints / floats, NaN where undefined.
    """
    p, r = _pair(pred, real, 1)
    lag = lag_correlation(p, r, max_lag)
    amp = amplitude_ratio(p, r)
    ok = np.isfinite(p) & np.isfinite(r)
    frac = open_closed_fractions(p[ok], r[ok], closed_q, open_q)
    return {
        "n_frames": len(p),
        "n_valid": int(ok.sum()),
        "r0": float(lag["r0"]),
        "best_lag": lag["best_lag"],
        "r_best": float(lag["r_best"]),
        "std_ratio": float(amp["std_ratio"]),
        "range_ratio": float(amp["range_ratio"]),
        "closed_level": frac["closed_level"],
        "open_level": frac["open_level"],
        "closed_fraction": frac["closed_fraction"],
        "open_fraction": frac["open_fraction"],
        "ref_closed_fraction": frac["ref_closed_fraction"],
        "ref_open_fraction": frac["ref_open_fraction"],
    }


# --------------------------------------------------------------------------- 3-D vertices


def lip_vertex_error(
    pred_vertices: np.ndarray,
    real_vertices: np.ndarray,
    lip_index: np.ndarray | Sequence[int],
    squared: bool = False,
) -> float:
    """Lip vertex error (LVE): per frame the largest lip-vertex error, averaged over frames.

    ``mean_t max_{v in lip} ||pred[t, v] - real[t, v]||``, in mm. With ``squared=True`` the
    per-vertex error is the *squared* distance (mm²), which is what FaceFormer's and
    CodeTalker's evaluation code compute and report as LVE; use it to compare with their
    tables. Frames with a non-finite lip coordinate in either input are dropped.

    Args:
        pred_vertices: (N, V, 3) predicted vertices, mm.
        real_vertices: (N, V, 3) reference vertices, mm, same topology.
        lip_index: (K,) indices of the lip vertices.
        squared: max of squared distances instead of distances.

    Returns:
        LVE in mm (mm² if ``squared``); NaN when no frame is left.
    """
    p, r = _vertices(pred_vertices, real_vertices, lip_index, "lip_index")
    if len(p) == 0:
        return math.nan
    d2 = ((p - r) ** 2).sum(-1)  # (N', K)
    per_frame = d2.max(-1) if squared else np.sqrt(d2.max(-1))
    return float(per_frame.mean())


def face_dynamics_deviation(
    pred_vertices: np.ndarray,
    real_vertices: np.ndarray,
    upper_index: np.ndarray | Sequence[int],
    template: np.ndarray | None = None,
    squared: bool = False,
) -> float:
    """Upper-face dynamics deviation (FDD, CodeTalker): how much less the upper face moves.

    For each upper-face vertex v and each sequence, the motion magnitude per frame is
    ``m[t, v] = ||x[t, v] - x0[v]||`` (``x0`` = ``template``, shared by both sequences, or,
    when ``template`` is None, each sequence's own temporal mean of that vertex). Then

        FDD = mean_v std_t(m_real[:, v]) - mean_v std_t(m_pred[:, v])

    (population std, ddof=0; equal to the mean over vertices of std_real - std_pred). Positive:
    the prediction's upper face moves less than the real one. CodeTalker's evaluation code
    uses the neutral template as ``x0`` and the squared norm ``||·||²`` (``squared=True``,
    mm²); pass both to reproduce it. Frames with a non-finite upper-face coordinate in either
    input are dropped from both.

    Args:
        pred_vertices: (N, V, 3) predicted vertices, mm.
        real_vertices: (N, V, 3) reference vertices, mm.
        upper_index: (K,) indices of the upper-face vertices (above the mouth).
        template: (V, 3) neutral face of the subject, mm; None: each sequence's mean.
        squared: squared motion norms (mm²) instead of norms (mm).

    Returns:
        FDD in mm (mm² if ``squared``); NaN with fewer than 2 frames left.
    """
    p, r = _vertices(pred_vertices, real_vertices, upper_index, "upper_index")
    if template is not None:
        t = np.asarray(template, dtype=np.float64)
        n_vert = np.asarray(pred_vertices).shape[1]
        if t.shape != (n_vert, 3):
            raise ValueError(f"template must be ({n_vert}, 3), got shape {t.shape}")
        shared = t[np.asarray(upper_index)]
        if not np.isfinite(shared).all():
            raise ValueError("template has non-finite upper-face coordinates")
    else:
        shared = None
    if len(p) < 2:
        return math.nan

    def motion_std(x: np.ndarray) -> float:
        x0 = x.mean(0) if shared is None else shared
        m2 = ((x - x0) ** 2).sum(-1)  # (N', K)
        m = m2 if squared else np.sqrt(m2)
        return float(m.std(0).mean())

    return motion_std(r) - motion_std(p)


# --------------------------------------------------------------------------- pictures


def plot_opening_curves(
    path: str | Path,
    curves: Mapping[str, np.ndarray],
    fps: float,
    title: str = "",
    ylabel: str = "mouth opening",
    more: Sequence[tuple[Mapping[str, np.ndarray], str]] = (),
) -> Path:
    """A PNG (or any format matplotlib knows from the suffix) of opening curves over time.

    One line per curve, x in seconds (frame i at i / fps), NaN frames as gaps. Drawn without
    pyplot (leaves the caller's backend alone) and written atomically: a reader sees the old
    file or the new one, never a half-written one.

    Args:
        path: output file; its folder is created.
        curves: label -> (N_label,) curve; the lengths may differ.
        fps: frames per second.
        title: figure title.
        ylabel: y-axis label, with the unit (e.g. "inner-lip distance (mm)").
        more: further panels below the first, each ``(curves, ylabel)`` (e.g. the same
            motion measured in another unit); empty panels are skipped.

    Returns:
        ``path``.
    """
    from matplotlib.figure import Figure  # no pyplot: leaves the caller's backend alone

    from nvp.config import atomic_write_bytes

    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if not curves:
        raise ValueError("curves is empty: nothing to plot")
    panels = [(curves, ylabel), *((c, y) for c, y in more if c)]
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    fig = Figure(figsize=(10, 3.5 * len(panels)))
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (panel, label_y) in zip(axes, panels):
        for label, y in panel.items():
            y = _curve(y, f"curve {label!r}")
            ax.plot(np.arange(len(y)) / fps, y, label=label, linewidth=1.2)
        ax.set_ylabel(label_y)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right")
    axes[-1].set_xlabel("time (s)")
    if title:
        axes[0].set_title(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=100)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(path, buf.getvalue())


def mouth_boxes_from_landmarks(
    landmarks: np.ndarray,
    lip_index: np.ndarray | Sequence[int],
    margin: float = 0.6,
    image_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Square boxes around the lips, one per frame: (N, 4) float64 ``x0, y0, x1, y1`` pixels.

    The box is centred on the lip landmarks' bounding box; its side is
    ``max(lip width, lip height) + 2·margin·lip width``. With ``image_size`` the box is moved
    inside the image when it fits (staying square) and clipped where it does not. Frames with
    a non-finite lip landmark get a NaN row (:func:`mouth_strip` draws them black).

    Args:
        landmarks: (N, L, 2) or (N, L, 3) landmarks in pixels (x, y[, z]; z is ignored).
        lip_index: indices of the lip landmarks (e.g. dlib 48-67).
        margin: padding on each side, as a fraction of the lip width (>= 0).
        image_size: (height, width) of the frames, or None for no clipping.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim != 3 or lm.shape[-1] not in (2, 3):
        raise ValueError(f"landmarks must be (N, L, 2|3), got shape {lm.shape}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    idx = np.asarray(lip_index)
    if idx.ndim != 1 or len(idx) < 2 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError("lip_index must be a 1-D integer index of at least 2 landmarks")
    lips = lm[:, idx, :2]  # (N, K, 2)
    with np.errstate(invalid="ignore"):
        lo, hi = lips.min(1), lips.max(1)  # (N, 2), NaN propagates
    centre = (lo + hi) / 2
    width = hi[:, 0] - lo[:, 0]
    side = np.maximum(width, hi[:, 1] - lo[:, 1]) + 2 * margin * width
    half = side[:, None] / 2
    x0y0 = centre - half
    x1y1 = centre + half
    if image_size is not None:
        h, w = image_size
        size = np.array([w, h], dtype=np.float64)
        shift = np.where(x0y0 < 0, -x0y0, 0.0) - np.where(x1y1 > size, x1y1 - size, 0.0)
        x0y0 = np.clip(x0y0 + shift, 0, size)
        x1y1 = np.clip(x1y1 + shift, 0, size)
    return np.concatenate([x0y0, x1y1], axis=1)


def mouth_strip(
    frames: np.ndarray,
    mouth_boxes: np.ndarray,
    every: int = 1,
    max_tiles: int = 50,
    tile: int = 64,
    per_row: int = 25,
) -> np.ndarray:
    """Mouth crops of a clip side by side, for looking at lip motion at a glance.

    Frames 0, every, 2·every, … (at most ``max_tiles``) are cropped to their box, resized to
    ``tile`` × ``tile`` (cv2, area interpolation when shrinking, linear when enlarging) and
    laid out left to right in rows of ``per_row`` tiles (25 = 1 s at 25 fps with every=1);
    the last row is padded with black. A box with a NaN or an empty crop gives a black tile.
    Colour channels are kept in the given order.

    Args:
        frames: (N, H, W, 3) uint8 frames.
        mouth_boxes: (N, 4) ``x0, y0, x1, y1`` pixels (x1, y1 exclusive; rounded, clipped
            to the frame), e.g. from :func:`mouth_boxes_from_landmarks`.
        every: frame step (>= 1).
        max_tiles: most tiles (>= 1).
        tile: tile side in pixels (>= 1).
        per_row: tiles per row (>= 1).

    Returns:
        (rows·tile, min(n_tiles, per_row)·tile, 3) uint8, with
        n_tiles = min(ceil(N / every), max_tiles) and rows = ceil(n_tiles / per_row).
    """
    import cv2

    f = np.asarray(frames)
    b = np.asarray(mouth_boxes, dtype=np.float64)
    if f.ndim != 4 or f.shape[-1] != 3 or f.dtype != np.uint8:
        raise ValueError(f"frames must be (N, H, W, 3) uint8, got {f.shape} {f.dtype}")
    if b.shape != (len(f), 4):
        raise ValueError(f"mouth_boxes must be ({len(f)}, 4), got shape {b.shape}")
    if len(f) == 0:
        raise ValueError("frames is empty")
    params = {"every": every, "max_tiles": max_tiles, "tile": tile, "per_row": per_row}
    for name, v in params.items():
        if isinstance(v, bool) or int(v) != v or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    picks = list(range(0, len(f), int(every)))[: int(max_tiles)]
    h, w = f.shape[1:3]
    tiles = []
    for i in picks:
        out = np.zeros((tile, tile, 3), np.uint8)
        if np.isfinite(b[i]).all():
            x0, y0, x1, y1 = np.rint(b[i]).astype(int).tolist()
            x0, x1 = max(0, x0), min(w, x1)
            y0, y1 = max(0, y0), min(h, y1)
            if x1 > x0 and y1 > y0:
                crop = np.ascontiguousarray(f[i, y0:y1, x0:x1])
                shrink = crop.shape[0] > tile or crop.shape[1] > tile
                interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
                out = cv2.resize(crop, (tile, tile), interpolation=interp)
        tiles.append(out)
    cols = min(len(tiles), int(per_row))
    rows = math.ceil(len(tiles) / cols)
    strip = np.zeros((rows * tile, cols * tile, 3), np.uint8)
    for k, t in enumerate(tiles):
        r, c = divmod(k, cols)
        strip[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] = t
    return strip
