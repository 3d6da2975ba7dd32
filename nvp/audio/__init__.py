"""Audio features: extractors (a registry) and per-video-frame windows.

Typical use::

    from nvp.audio import AudioFeatureConfig, extract_windows

    windows = extract_windows(audio, sample_rate, n_frames, fps, AudioFeatureConfig())
    # (n_frames, 16, D) float32, one network input per video frame

See :mod:`nvp.audio.windows` for the window convention and :mod:`nvp.audio.features` for
the extractors.
"""

from nvp.audio.config import AudioFeatureConfig
from nvp.audio.features import (
    EXTRACTORS,
    FeatureExtractor,
    feature_signature,
    make_extractor,
    register,
)
from nvp.audio.windows import (
    extract_windows,
    frame_windows,
    load_precomputed,
    prepare_audio,
    resample_rows,
)

__all__ = [
    "EXTRACTORS",
    "AudioFeatureConfig",
    "FeatureExtractor",
    "extract_windows",
    "feature_signature",
    "frame_windows",
    "load_precomputed",
    "make_extractor",
    "prepare_audio",
    "register",
    "resample_rows",
]
