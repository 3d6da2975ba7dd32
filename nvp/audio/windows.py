"""Per-video-frame windows of audio feature rows.

Window convention (both strides)
--------------------------------
The windows are cut from a row sequence ``seq`` of length L. Video frame t (at time
t / fps) has a centre row c(t); its window holds the ``window`` rows

    seq[c - window // 2], ..., seq[c - window // 2 + window - 1]

i.e. rows [c - 8, c + 8) for the default 16: 8 rows before the centre, the centre row at
slot ``window // 2`` (slot 8), and 7 rows after it. Rows outside [0, L) are zero
(``pad="zero"``) or the nearest end row (``pad="edge"``).

* ``stride="video"`` (the authors' release): the extractor's rows (rate R) are first
  resampled linearly in time to the video grid, ``seq[t] = features at t / fps`` for
  t = 0 .. n_frames - 1 (``np.interp`` on the row times r / R; times past the last row
  keep the last row), so L = n_frames, c(t) = t and consecutive windows shift by one row.
* ``stride="50hz"`` (the NeRF family): ``seq`` is the extractor's rows themselves, L = T,
  and c(t) = floor(t * R / fps + 1/2), the row nearest to the frame time; at 50 Hz and
  25 fps c(t) = 2 t, so windows advance 2 rows per frame.

The authors' released DeepSpeech features follow exactly the ``"video"`` / ``"zero"``
case: frame t's (16, 29) window holds the video-rate logits of frames t - 8 .. t + 7
(checked on the released greta_1 and Trump features: frame 0 has 8 zero rows, the last
frame 7, and window t + 1 equals window t shifted by one row), as VOCA's feature code
builds them. AD-NeRF's 50 Hz windows are the ``"50hz"`` / ``"zero"`` case.
"""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from nvp.audio._common import SAMPLE_RATE, as_mono_float32
from nvp.audio.config import (
    PRECOMPUTED_SHAPE,
    STRIDES,
    AudioFeatureConfig,
    check_precomputed_config,
    validate_config,
)
from nvp.audio.features import FeatureExtractor, config_dict, make_extractor
from nvp.errors import InputError

log = logging.getLogger(__name__)

#: Audio / video duration mismatch (seconds) above which extract_windows warns.
DURATION_TOLERANCE_S = 1.0

_PER_FRAME_FILE = re.compile(r"^(\d+)\.deepspeech\.npy$")
_EXTRACTOR_CACHE: dict[tuple[tuple[str, Any], ...], FeatureExtractor] = {}


def resample_rows(features: np.ndarray, rate_hz: float, n_frames: int, fps: float) -> np.ndarray:
    """Linear interpolation of feature rows onto the video frame times.

    Row r of ``features`` is at r / rate_hz; output row t is at t / fps. Times past the
    last row take the last row (``np.interp``'s clamping), as VOCA's
    ``interpolate_features``.

    Returns:
        (n_frames, D) float32.
    """
    features = np.asarray(features, dtype=np.float64)
    n_rows = features.shape[0]
    pos = np.arange(n_frames, dtype=np.float64) * (rate_hz / fps)
    pos = np.clip(pos, 0.0, n_rows - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n_rows - 1)
    frac = (pos - lo)[:, None]
    return ((1.0 - frac) * features[lo] + frac * features[hi]).astype(np.float32)


def window_centres(n_frames: int, fps: float, rate_hz: float, stride: str) -> np.ndarray:
    """Centre row c(t) of each frame's window (see the module docstring)."""
    t = np.arange(n_frames, dtype=np.int64)
    if stride == "video":
        return t
    return np.floor(t * (rate_hz / fps) + 0.5).astype(np.int64)


def frame_windows(
    features: np.ndarray,
    rate_hz: float,
    n_frames: int,
    fps: float,
    *,
    window: int = 16,
    stride: str = "video",
    pad: str = "zero",
) -> np.ndarray:
    """Cut one window of feature rows per video frame.

    Args:
        features: (T, D) feature rows, row r at time r / rate_hz seconds.
        rate_hz: feature rows per second (50 for the built-in extractors).
        n_frames: number of video frames N.
        fps: video frames per second.
        window: rows per window.
        stride: ``"video"`` or ``"50hz"`` (see the module docstring).
        pad: ``"zero"`` or ``"edge"``: how rows outside the sequence are filled.

    Returns:
        (N, window, D) float32; window t holds rows [c(t) - window // 2,
        c(t) - window // 2 + window) of the (resampled, for ``"video"``) sequence.

    Raises:
        ValueError: for a non-2-D or empty ``features``, or bad rates / sizes / options.
    """
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[0] == 0:
        raise ValueError(f"features must be a non-empty (T, D) array, got shape {features.shape}")
    if not (rate_hz > 0 and fps > 0):
        raise ValueError(f"rate_hz and fps must be positive, got {rate_hz} and {fps}")
    if n_frames < 0 or window < 1:
        raise ValueError(f"need n_frames >= 0 and window >= 1, got {n_frames} and {window}")
    if stride not in STRIDES:
        raise ValueError(f"stride must be one of {list(STRIDES)}, got {stride!r}")
    if pad not in ("zero", "edge"):
        raise ValueError(f"pad must be 'zero' or 'edge', got {pad!r}")

    if stride == "video":
        seq = resample_rows(features, rate_hz, n_frames, fps)
    else:
        seq = np.asarray(features, dtype=np.float32)
    if seq.shape[0] == 0:  # n_frames == 0 with the video stride
        return np.zeros((0, window, features.shape[1]), dtype=np.float32)
    centres = window_centres(n_frames, fps, rate_hz, stride)
    index = centres[:, None] + (np.arange(window) - window // 2)[None, :]
    inside = (index >= 0) & (index < seq.shape[0])
    out = seq[np.clip(index, 0, seq.shape[0] - 1)]
    if pad == "zero":
        out[~inside] = 0.0
    return np.ascontiguousarray(out, dtype=np.float32)


def _cached_extractor(cfg: AudioFeatureConfig | Any) -> FeatureExtractor:
    """One extractor per distinct config per process (Whisper loads its model once)."""
    key = json.dumps(config_dict(cfg), sort_keys=True, default=str)
    if key not in _EXTRACTOR_CACHE:
        _EXTRACTOR_CACHE[key] = make_extractor(cfg)
    return _EXTRACTOR_CACHE[key]


def prepare_audio(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Check a mono waveform and resample it to 16 kHz (soxr, high quality) if needed.

    Returns:
        (S',) float32 at 16 kHz.

    Raises:
        InputError: for a non-1-D, empty or non-finite array, or a non-positive rate.
    """
    audio = as_mono_float32(audio)
    if not sample_rate or sample_rate <= 0:
        raise InputError(f"the audio sample rate must be positive, got {sample_rate}")
    if int(sample_rate) != SAMPLE_RATE:
        import librosa

        audio = librosa.resample(
            audio, orig_sr=int(sample_rate), target_sr=SAMPLE_RATE, res_type="soxr_hq"
        )
        audio = np.ascontiguousarray(audio, dtype=np.float32)
    return audio


def extract_windows(
    audio: np.ndarray,
    sample_rate: int,
    n_frames: int,
    fps: float,
    cfg: AudioFeatureConfig | Any,
    *,
    extractor: FeatureExtractor | None = None,
) -> np.ndarray:
    """Audio to the per-frame network inputs.

    Resamples to 16 kHz if needed, runs the configured extractor (one cached extractor per
    config unless ``extractor`` is given) and cuts the windows with :func:`frame_windows`.
    With ``cfg.precomputed`` set, the audio is only used for the length check and the
    windows are read with :func:`load_precomputed` (the audio is only checked).

    Args:
        audio: (S,) mono waveform, float in [-1, 1] or integer PCM, at ``sample_rate``.
        sample_rate: Hz.
        n_frames: number of video frames N.
        fps: video frames per second.
        cfg: an :class:`AudioFeatureConfig` or a ``DictConfig`` with its keys.
        extractor: use this extractor instead of building one from ``cfg``.

    Returns:
        (N, cfg.window, D) float32.

    Raises:
        InputError: for a non-1-D / empty waveform, or one shorter than one window (the
            window's span: ``window / fps`` seconds with the video stride, ``window /
            rate_hz`` with the 50 Hz stride).
        ConfigError, MissingDependencyError: from the extractor.
    """
    validate_config(cfg)
    if cfg.precomputed:
        as_mono_float32(audio)
        return load_precomputed(cfg.precomputed, n_frames, cfg=cfg)
    audio = prepare_audio(audio, sample_rate)
    if extractor is None:
        extractor = _cached_extractor(cfg)
    span_s = cfg.window / (fps if cfg.stride == "video" else extractor.rate_hz)
    duration_s = audio.size / SAMPLE_RATE
    if audio.size < math.ceil(span_s * SAMPLE_RATE):
        raise InputError(
            f"the audio is too short: {duration_s:.3f} s ({audio.size} samples at 16 kHz), "
            f"less than one {cfg.window}-row window ({span_s:.3f} s with "
            f"audio.stride={cfg.stride!r})"
        )
    video_s = n_frames / fps
    if abs(video_s - duration_s) > DURATION_TOLERANCE_S:
        log.warning(
            "audio (%.2f s) and video (%d frames at %g fps = %.2f s) differ by more than "
            "%.1f s; the windows beyond the audio are padding",
            duration_s,
            n_frames,
            fps,
            video_s,
            DURATION_TOLERANCE_S,
        )
    rows = extractor(audio)
    if rows.ndim != 2 or rows.shape[1] != extractor.dim:
        raise RuntimeError(
            f"extractor {extractor.name!r} returned shape {rows.shape}, "
            f"expected (T, {extractor.dim})"
        )
    return frame_windows(
        rows,
        extractor.rate_hz,
        n_frames,
        fps,
        window=cfg.window,
        stride=cfg.stride,
        pad=cfg.pad,
    )


def load_precomputed(
    path: str | Path, n_frames: int | None, *, cfg: AudioFeatureConfig | Any | None = None
) -> np.ndarray:
    """Read precomputed DeepSpeech windows in the authors' per-frame layout.

    Two forms are accepted:

    * a folder such as the release's ``audio_feature/`` with one file per video frame,
      ``<i>.deepspeech.npy`` (i = 0 .. N - 1, contiguous), each a (16, 29) float64 array;
      they are stacked in frame order and cast to float32, as the official loader does;
    * one ``.npy`` file holding the stacked (N, 16, 29) array.

    Frame t's window holds the video-rate logits of frames t - 8 .. t + 7 with zero rows
    beyond the sequence (see the module docstring).

    Args:
        path: folder or ``.npy`` file.
        n_frames: expected number of frames N (the video's); ``None`` accepts any N.
        cfg: if given, checked to describe such windows (:func:`check_precomputed_config`).

    Returns:
        (N, 16, 29) float32.

    Raises:
        InputError: if the path is missing, a file is not (16, 29), the per-frame files are
            not numbered 0 .. N - 1, or N differs from ``n_frames``.
    """
    if cfg is not None:
        check_precomputed_config(cfg)
    path = Path(path)
    if path.is_dir():
        features = _load_per_frame_folder(path)
    elif path.is_file():
        try:
            features = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise InputError(f"cannot read precomputed audio features: {err}", path=path) from err
        if features.ndim == 4 and features.shape[-1] == 1:  # (N, 16, 29, 1)
            features = features[..., 0]
        if features.ndim != 3 or features.shape[1:] != PRECOMPUTED_SHAPE:
            raise InputError(
                f"precomputed audio features must have shape (N, 16, 29), got {features.shape}",
                path=path,
            )
    else:
        raise InputError(
            "precomputed audio features not found (expected an (N, 16, 29) .npy file or an "
            "audio_feature/ folder of <i>.deepspeech.npy files)",
            path=path,
        )
    if n_frames is not None and features.shape[0] != n_frames:
        raise InputError(
            f"the precomputed audio features have {features.shape[0]} frames but the video "
            f"has {n_frames}; they must come from the same sequence",
            path=path,
        )
    if not np.isfinite(features).all():
        raise InputError("precomputed audio features contain NaN or infinite values", path=path)
    return np.ascontiguousarray(features, dtype=np.float32)


def _load_per_frame_folder(folder: Path) -> np.ndarray:
    indices = {}
    for f in folder.iterdir():
        match = _PER_FRAME_FILE.match(f.name)
        if match:
            indices[int(match.group(1))] = f
    if not indices:
        raise InputError("no <i>.deepspeech.npy files in this folder", path=folder)
    n = len(indices)
    if sorted(indices) != list(range(n)):
        missing = sorted(set(range(max(indices) + 1)) - set(indices))[:5]
        raise InputError(
            f"the per-frame feature files must be numbered 0 .. {n - 1} without gaps; "
            f"missing e.g. {missing}",
            path=folder,
        )
    frames = np.empty((n, *PRECOMPUTED_SHAPE), dtype=np.float32)
    for i in range(n):
        x = np.load(indices[i], allow_pickle=False)
        if x.size != frames[i].size or x.squeeze().shape != PRECOMPUTED_SHAPE:
            raise InputError(
                f"a per-frame feature file must hold a (16, 29) array, got {x.shape}",
                path=indices[i],
            )
        frames[i] = x.reshape(PRECOMPUTED_SHAPE)
    return frames
