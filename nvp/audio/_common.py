"""Small helpers shared by the audio extractors: input checks and file fingerprints."""

from __future__ import annotations

import numpy as np

from nvp.errors import InputError

#: Sample rate every extractor works at (Hz).
SAMPLE_RATE = 16000


def as_mono_float32(audio: np.ndarray, what: str = "audio") -> np.ndarray:
    """Check a waveform and return it as a contiguous 1-D float32 array.

    Integer arrays are scaled to [-1, 1) by their type's range (int16 / 32768); float
    arrays are taken as they are.

    Args:
        audio: (S,) mono waveform, float in [-1, 1] or integer PCM.
        what: name of the input, used in error messages.

    Raises:
        InputError: if ``audio`` is not a 1-D, non-empty, finite numeric array.
    """
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise InputError(
            f"{what} must be a 1-D mono waveform (S,), got shape {audio.shape}; "
            "mix the channels down first (e.g. x.mean(axis=channel_axis))"
        )
    if audio.size == 0:
        raise InputError(f"{what} is empty (0 samples)")
    if np.issubdtype(audio.dtype, np.integer):
        info = np.iinfo(audio.dtype)
        scale = float(max(-int(info.min), int(info.max) + 1))
        return np.ascontiguousarray(audio.astype(np.float32) / np.float32(scale))
    if not np.issubdtype(audio.dtype, np.floating):
        raise InputError(f"{what} must be a float or integer array, got dtype {audio.dtype}")
    out = np.ascontiguousarray(audio, dtype=np.float32)
    if not np.isfinite(out).all():
        raise InputError(f"{what} contains NaN or infinite samples")
    return out
