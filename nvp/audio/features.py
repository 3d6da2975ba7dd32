"""Audio feature extractors: a registry from names to factories, and the built-ins.

An extractor maps a 16 kHz mono waveform to a sequence of feature rows at a fixed rate:

    extractor = make_extractor(AudioFeatureConfig(name="mel"))
    rows = extractor(audio)            # (T, extractor.dim) float32, row r at r / rate_hz s

Built-in extractors (all at 50 Hz, row r centred at r / 50 s):

==============  =====================  ==================================================
name            D                      needs
==============  =====================  ==================================================
``mel``         ``n_mels`` (80)        librosa
``mfcc``        ``3 * n_mfcc`` (39)    librosa (``n_mfcc`` without deltas)
``whisper``     384 (tiny.en)          faster-whisper (CTranslate2) + local weights
``deepspeech``  29                     tensorflow + DeepSpeech v0.1.0 ``output_graph.pb``
==============  =====================  ==================================================

New extractors register a factory ``cfg -> extractor`` under a name with
:func:`register`, or are named by reference in the config (``audio.name=module:Class`` or
``file.py:Class``, settings in ``audio.options``; see :mod:`nvp.plugins`).
An extractor may define ``identity() -> dict`` (e.g. a weight-file hash);
:func:`feature_signature` includes it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from nvp.audio._common import SAMPLE_RATE, as_mono_float32
from nvp.audio.config import AudioFeatureConfig, validate_config
from nvp.audio.deepspeech import DeepSpeechExtractor
from nvp.audio.whisper import WhisperEncoderExtractor
from nvp.errors import ConfigError, InputError
from nvp.io.files import file_sha256

#: Bumped whenever a built-in extractor's numbers change; part of the signature.
FEATURE_VERSION = 1

#: STFT window of the librosa extractors: 25 ms at 16 kHz.
N_FFT = 400
#: Hop of the librosa extractors: 20 ms at 16 kHz, i.e. 50 rows per second.
HOP = 320
#: Floor added to the mel power before the logarithm.
LOG_FLOOR = 1e-6


@runtime_checkable
class FeatureExtractor(Protocol):
    """Maps a waveform to feature rows at a fixed rate.

    Attributes:
        name: registry name.
        dim: feature size D.
        rate_hz: rows per second; row r is at time r / rate_hz seconds.
    """

    name: str
    dim: int
    rate_hz: float

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """(S,) float32 mono 16 kHz waveform in [-1, 1] -> (T, D) float32 rows at rate_hz."""
        ...


ExtractorFactory = Callable[[AudioFeatureConfig], FeatureExtractor]

#: Registered extractor factories by name.
EXTRACTORS: dict[str, ExtractorFactory] = {}


def register(name: str) -> Callable[[ExtractorFactory], ExtractorFactory]:
    """Decorator that registers an extractor factory (a class or function of the config).

    Raises:
        ValueError: if another factory is already registered under ``name``.
    """

    def decorator(factory: ExtractorFactory) -> ExtractorFactory:
        if EXTRACTORS.get(name, factory) is not factory:
            raise ValueError(f"an audio feature extractor named {name!r} is already registered")
        EXTRACTORS[name] = factory
        return factory

    return decorator


def make_extractor(cfg: AudioFeatureConfig | Any) -> FeatureExtractor:
    """Build the extractor a config names.

    Args:
        cfg: an :class:`AudioFeatureConfig` or a ``DictConfig`` with the same keys.

    Raises:
        ConfigError: for an unknown name (the message lists the known ones) or a bad value.
        MissingDependencyError: if the extractor's package or weights are absent.
    """
    from nvp.plugins import is_reference, load_object, plugin_options

    validate_config(cfg)
    if is_reference(cfg.name) and cfg.name not in EXTRACTORS:
        cls = load_object(cfg.name, "audio.name")
        return cls(plugin_options(cls, cfg.options, "audio.options"))
    if cfg.name not in EXTRACTORS:
        raise ConfigError(
            f"unknown audio feature extractor audio.name={cfg.name!r}; "
            f"known extractors: {', '.join(sorted(EXTRACTORS))} (or module:Class, "
            "file.py:Class for your own)"
        )
    return EXTRACTORS[cfg.name](cfg)


def _librosa_mel_power(audio: np.ndarray, n_mels: int) -> np.ndarray:
    """(n_mels, 1 + S // HOP) mel power spectrogram, frames centred at r * HOP samples."""
    import librosa

    return librosa.feature.melspectrogram(
        y=audio,
        sr=SAMPLE_RATE,
        n_fft=N_FFT,
        hop_length=HOP,
        win_length=N_FFT,
        window="hann",
        center=True,
        pad_mode="constant",
        power=2.0,
        n_mels=n_mels,
        fmin=0.0,
        fmax=SAMPLE_RATE / 2,
    )


@register("mel")
class MelExtractor:
    """Log-mel spectrogram, D = n_mels at 50 Hz.

    librosa power mel spectrogram of the [-1, 1] waveform: 25 ms Hann window (n_fft 400),
    20 ms hop, Slaney mel scale and filter normalisation over 0-8 kHz, then
    ``ln(mel + 1e-6)``. The log has a fixed floor and no per-clip reference (unlike
    ``power_to_db``'s ``ref``/``top_db``), so a row depends only on its own 25 ms of
    audio and the features of a clip equal those of the same samples inside a longer one.
    Silence gives ln(1e-6) = -13.8.

    Timing: frames are centred (zero padding of 200 samples at both ends), so row r is
    centred at sample 320 r, time r / 50 s; ``S`` samples give ``1 + S // 320`` rows.
    """

    name = "mel"
    rate_hz = 50.0

    def __init__(self, cfg: AudioFeatureConfig | Any) -> None:
        self.n_mels = int(cfg.n_mels)
        self.dim = self.n_mels

    def identity(self) -> dict[str, Any]:
        return {"n_mels": self.n_mels, "n_fft": N_FFT, "hop": HOP, "log_floor": LOG_FLOOR}

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        audio = as_mono_float32(audio)
        mel = _librosa_mel_power(audio, self.n_mels)
        return np.ascontiguousarray(np.log(mel + LOG_FLOOR).T, dtype=np.float32)


@register("mfcc")
class MfccExtractor:
    """MFCCs with first and second deltas, D = 3 * n_mfcc (39) at 50 Hz.

    The cepstra are the orthonormal DCT-II of the ``mel`` extractor's log-mel rows (same
    window, hop and n_mels; ``librosa.feature.mfcc(S=log_mel)``), first ``n_mfcc``
    coefficients (c0 included). With ``mfcc_deltas`` the rows are
    ``[mfcc, delta, delta-delta]`` (``librosa.feature.delta``, Savitzky-Golay width 9,
    ``mode="interp"``; a narrower odd width for clips under 9 rows, zeros under 3 rows).

    Timing: as ``mel``, row r is centred at r / 50 s; ``1 + S // 320`` rows.
    """

    name = "mfcc"
    rate_hz = 50.0

    def __init__(self, cfg: AudioFeatureConfig | Any) -> None:
        self.n_mels = int(cfg.n_mels)
        self.n_mfcc = int(cfg.n_mfcc)
        self.deltas = bool(cfg.mfcc_deltas)
        self.dim = self.n_mfcc * (3 if self.deltas else 1)

    def identity(self) -> dict[str, Any]:
        return {
            "n_mels": self.n_mels,
            "n_mfcc": self.n_mfcc,
            "deltas": self.deltas,
            "n_fft": N_FFT,
            "hop": HOP,
            "log_floor": LOG_FLOOR,
        }

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        import librosa

        audio = as_mono_float32(audio)
        log_mel = np.log(_librosa_mel_power(audio, self.n_mels) + LOG_FLOOR)
        mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=self.n_mfcc, dct_type=2, norm="ortho")
        parts = [mfcc]
        if self.deltas:
            n_rows = mfcc.shape[1]
            width = min(9, n_rows if n_rows % 2 else n_rows - 1)
            for order in (1, 2):
                if width >= 3:
                    parts.append(
                        librosa.feature.delta(mfcc, width=width, order=order, mode="interp")
                    )
                else:
                    parts.append(np.zeros_like(mfcc))
        return np.ascontiguousarray(np.concatenate(parts, axis=0).T, dtype=np.float32)


@register("whisper")
def _make_whisper(cfg: AudioFeatureConfig | Any) -> WhisperEncoderExtractor:
    return WhisperEncoderExtractor(
        cfg.whisper_model, device=cfg.whisper_device, compute_type=cfg.whisper_compute_type
    )


@register("deepspeech")
def _make_deepspeech(cfg: AudioFeatureConfig | Any) -> DeepSpeechExtractor:
    return DeepSpeechExtractor(cfg.deepspeech_graph)


def config_dict(cfg: AudioFeatureConfig | Any) -> dict[str, Any]:
    """The config's fields as a plain dict (works for the dataclass and a ``DictConfig``)."""
    if is_dataclass(cfg) and not isinstance(cfg, type):
        return asdict(cfg)
    from omegaconf import OmegaConf

    out = {f.name: getattr(cfg, f.name) for f in fields(AudioFeatureConfig)}
    if OmegaConf.is_config(out.get("options")):
        out["options"] = OmegaConf.to_container(out["options"])
    return out


def feature_signature(cfg: AudioFeatureConfig | Any) -> dict[str, Any]:
    """The settings that determine the windows, for content hashes and store attributes.

    Keys: ``name``, ``dim``, ``rate_hz``, ``window``, ``stride``, ``pad``, ``version`` and
    the extractor's ``identity()`` (e.g. ``model_sha256`` for Whisper, ``graph_sha256`` for
    DeepSpeech, the mel settings for mel/MFCC). For precomputed features: ``source:
    "precomputed"`` and the file's ``file_sha256`` (for a folder of per-frame files, the
    hash of their names and contents), with the authors' window settings.

    Only JSON types are used, so the dict can be hashed via ``json.dumps(...,
    sort_keys=True)``. Building it does not load any model (hashing a weight file reads it
    once per process).
    """
    validate_config(cfg)
    if cfg.precomputed:
        from nvp.audio.config import PRECOMPUTED_SHAPE, check_precomputed_config

        check_precomputed_config(cfg)
        return {
            "name": cfg.name,
            "source": "precomputed",
            "file_sha256": _path_sha256(Path(cfg.precomputed)),
            "dim": PRECOMPUTED_SHAPE[1],
            "rate_hz": None,
            "window": PRECOMPUTED_SHAPE[0],
            "stride": "video",
            "pad": "zero",
            "version": FEATURE_VERSION,
        }
    extractor = make_extractor(cfg)
    signature: dict[str, Any] = {
        "name": extractor.name,
        "source": "extracted",
        "dim": int(extractor.dim),
        "rate_hz": float(extractor.rate_hz),
        "window": int(cfg.window),
        "stride": str(cfg.stride),
        "pad": str(cfg.pad),
        "version": FEATURE_VERSION,
    }
    identity = getattr(extractor, "identity", None)
    if callable(identity):
        signature.update(identity())
    if ":" in cfg.name:  # code named by reference: its settings and its source are part
        from omegaconf import OmegaConf

        from nvp.plugins import source_hash

        opts = cfg.options
        opts = OmegaConf.to_container(opts) if OmegaConf.is_config(opts) else dict(opts or {})
        signature.update(name=cfg.name, options=opts, code_sha256=source_hash(type(extractor)))
    return signature


def _path_sha256(path: Path) -> str:
    """Hash of a file, or of a folder's ``*.npy`` files (names and content hashes)."""
    if path.is_file():
        return file_sha256(path)
    if path.is_dir():
        digest = hashlib.sha256()
        for f in sorted(path.glob("*.npy")):
            digest.update(f.name.encode() + b"\0" + file_sha256(f, 64).encode() + b"\n")
        return digest.hexdigest()[:16]
    raise InputError("precomputed audio features not found", path=path)
