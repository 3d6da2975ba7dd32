"""Voice activity detection: where and how much speech a recording holds.

The detector is the Silero VAD (v6, ONNX) that ``faster-whisper`` ships, run with
``onnxruntime`` on the CPU (one thread; several hundred times faster than real time).
It gives a speech probability for every 512-sample window (32 ms at 16 kHz); the
windows are turned into segments by the rule of ``faster_whisper.vad.
get_speech_timestamps`` (hysteresis between ``threshold`` and ``neg_threshold``,
segments shorter than ``min_speech_duration_ms`` dropped, pauses shorter than
``min_silence_duration_ms`` bridged, ``speech_pad_ms`` added on each side).

Here that rule runs incrementally over chunks of audio (:func:`speech_segments_stream`,
:func:`speech_seconds_stream`), so that a recording of any length is processed with
bounded memory, e.g. ``speech_seconds_stream(iter_audio(path))``; the results are the
same, sample for sample, as ``get_speech_timestamps`` on the whole array.

The default options are Silero's own (threshold 0.5, speech of at least 250 ms, pauses
of 100 ms, 30 ms padding), which measure speech tightly; ``faster-whisper``'s defaults
(``VadOptions()``: 2-s pauses bridged, 400-ms padding) are meant to cut audio for
transcription and count much of the silence around speech as speech.

Typical use::

    from nvp.audio.vad import speech_seconds_stream
    from nvp.io.audio import iter_audio

    seconds = speech_seconds_stream(iter_audio("talk.mp4", 16000))
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from nvp.audio._common import SAMPLE_RATE, as_mono_float32
from nvp.errors import MissingDependencyError

__all__ = [
    "SAMPLE_RATE",
    "WINDOW_SAMPLES",
    "default_vad_options",
    "speech_seconds",
    "speech_seconds_stream",
    "speech_segments",
    "speech_segments_stream",
]

#: Samples per Silero window at 16 kHz (32 ms): one speech probability each.
WINDOW_SAMPLES = 512
#: Samples of the previous window that the model sees with each window.
_CONTEXT_SAMPLES = 64
#: Windows per ONNX call (the batch size faster-whisper uses): bounds the memory.
_BATCH_WINDOWS = 10000


def default_vad_options() -> Any:
    """Silero's own segmentation defaults as a ``faster_whisper.vad.VadOptions``.

    threshold 0.5 (``neg_threshold`` 0.35), ``min_speech_duration_ms`` 250,
    ``min_silence_duration_ms`` 100, ``speech_pad_ms`` 30, no maximum segment length.

    Raises:
        MissingDependencyError: faster-whisper is not installed.
    """
    _check_dependencies()
    from faster_whisper.vad import VadOptions

    return VadOptions(
        threshold=0.5, min_speech_duration_ms=250, min_silence_duration_ms=100, speech_pad_ms=30
    )


def speech_segments(audio_16k: np.ndarray, options: Any = None) -> list[tuple[float, float]]:
    """Speech segments of a 16 kHz mono waveform.

    Args:
        audio_16k: (S,) float samples in [-1, 1] at 16 kHz (integer PCM is scaled).
        options: a ``faster_whisper.vad.VadOptions``; ``None`` for
            :func:`default_vad_options`.

    Returns:
        ``[(start_s, end_s), ...]`` in seconds, in order and not overlapping; ``[]`` for
        silence or an empty input.

    Raises:
        MissingDependencyError: faster-whisper, onnxruntime or the model file is missing.
        InputError: the audio is not a 1-D numeric array or holds NaN/inf.
    """
    return speech_segments_stream([audio_16k], options)


def speech_seconds(audio_16k: np.ndarray, options: Any = None) -> float:
    """Seconds of speech in a 16 kHz mono waveform: the total length of
    :func:`speech_segments`."""
    return _total(speech_segments(audio_16k, options))


def speech_segments_stream(
    chunks: Iterable[np.ndarray], options: Any = None
) -> list[tuple[float, float]]:
    """Speech segments of a 16 kHz mono waveform given as consecutive chunks.

    The chunks (any lengths, e.g. from :func:`nvp.io.audio.iter_audio`) are consumed one
    at a time: memory holds one chunk, the model's state and the segments found, never
    the whole waveform. The result equals :func:`speech_segments` of the concatenation.

    Args:
        chunks: (C,) float (or integer PCM) arrays at 16 kHz.
        options: a ``faster_whisper.vad.VadOptions``; ``None`` for
            :func:`default_vad_options`.

    Returns:
        ``[(start_s, end_s), ...]`` in seconds.

    Raises:
        MissingDependencyError: faster-whisper, onnxruntime or the model file is missing.
        InputError: a chunk is not a 1-D numeric array or holds NaN/inf.
    """
    if options is None:
        options = default_vad_options()
    probs = _SileroStream()
    segmenter = _Segmenter(options)
    for chunk in chunks:
        if np.size(chunk) == 0:
            continue
        segmenter.push(probs.feed(as_mono_float32(chunk, "audio chunk")))
    segmenter.push(probs.finish())
    return [
        (start / SAMPLE_RATE, end / SAMPLE_RATE) for start, end in segmenter.finish(probs.samples)
    ]


def speech_seconds_stream(chunks: Iterable[np.ndarray], options: Any = None) -> float:
    """Seconds of speech in a 16 kHz waveform given as chunks (bounded memory): the total
    length of :func:`speech_segments_stream`."""
    return _total(speech_segments_stream(chunks, options))


def _total(segments: list[tuple[float, float]]) -> float:
    return float(sum(end - start for start, end in segments))


# --------------------------------------------------------------------------- model


def _check_dependencies() -> Path:
    """The Silero model file; raises if a package or the file is missing."""
    missing = [m for m in ("faster_whisper", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependencyError(
            f"voice activity detection needs {' and '.join(missing)}: "
            "pip install faster-whisper onnxruntime (or pip install 'nvp[whisper]')"
        )
    from faster_whisper.utils import get_assets_path

    path = Path(get_assets_path()) / "silero_vad_v6.onnx"
    if not path.is_file():
        raise MissingDependencyError(
            f"the Silero VAD model {path} is missing from the faster-whisper installation "
            "(faster-whisper 1.2 or later ships it): reinstall faster-whisper"
        )
    return path


class _SileroStream:
    """Silero speech probabilities of a waveform fed in pieces: one per 512-sample window.

    Each window is given to the model with the last 64 samples of the window before it
    (zeros for the first) and the recurrent state carried over, as faster-whisper's
    ``SileroVADModel`` does for a whole array; the probabilities do not depend on how
    the waveform is cut into pieces.
    """

    def __init__(self) -> None:
        _check_dependencies()
        from faster_whisper.vad import get_vad_model

        self._session = get_vad_model().session
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self._context = np.zeros(_CONTEXT_SAMPLES, np.float32)
        self._rest = np.zeros(0, np.float32)  # samples of an incomplete window
        self.samples = 0  # samples fed so far

    def feed(self, audio: np.ndarray) -> np.ndarray:
        """Probabilities (float32) of the windows completed by ``audio``."""
        self.samples += audio.size
        if self._rest.size:
            audio = np.concatenate([self._rest, audio])
        n = audio.size // WINDOW_SAMPLES * WINDOW_SAMPLES
        self._rest = audio[n:].copy()
        return self._run(audio[:n])

    def finish(self) -> np.ndarray:
        """The probability of the last window, zero-padded to 512 samples (a window of
        zeros when the length is a multiple of 512, as ``get_speech_timestamps`` pads)."""
        last = np.zeros(WINDOW_SAMPLES, np.float32)
        last[: self._rest.size] = self._rest
        self._rest = np.zeros(0, np.float32)
        return self._run(last)

    def _run(self, audio: np.ndarray) -> np.ndarray:
        out = [np.zeros(0, np.float32)]
        windows = audio.reshape(-1, WINDOW_SAMPLES)
        for i in range(0, len(windows), _BATCH_WINDOWS):
            batch = windows[i : i + _BATCH_WINDOWS]
            context = np.concatenate([self._context[None], batch[:-1, -_CONTEXT_SAMPLES:]])
            self._context = batch[-1, -_CONTEXT_SAMPLES:].copy()
            probs, self._h, self._c = self._session.run(
                None,
                {"input": np.concatenate([context, batch], axis=1), "h": self._h, "c": self._c},
            )
            out.append(np.asarray(probs, np.float32).reshape(-1))
        return np.concatenate(out)


# --------------------------------------------------------------------------- segments


class _Segmenter:
    """The segmentation of ``faster_whisper.vad.get_speech_timestamps``, incremental.

    A port of that function's loop over window probabilities (itself adapted from
    github.com/snakers4/silero-vad, MIT), with the state kept between calls of
    :meth:`push`; :meth:`finish` closes the last segment and adds the padding. Positions
    are in samples at 16 kHz.
    """

    def __init__(self, options: Any) -> None:
        rate = SAMPLE_RATE
        self.threshold = options.threshold
        neg = options.neg_threshold
        self.neg_threshold = max(self.threshold - 0.15, 0.01) if neg is None else neg
        self.min_speech = rate * options.min_speech_duration_ms / 1000
        self.pad = rate * options.speech_pad_ms / 1000
        self.max_speech = rate * options.max_speech_duration_s - WINDOW_SAMPLES - 2 * self.pad
        self.min_silence = rate * options.min_silence_duration_ms / 1000
        self.min_silence_at_max_speech = rate * 98 / 1000
        self.window = 0  # index of the next window
        self.triggered = False
        self.start: int | None = None  # start of the current segment
        self.temp_end = 0  # a possible end (silence began), 0 when none
        self.prev_end = 0  # a possible cut of an overlong segment
        self.next_start = 0
        self.speeches: list[list[int]] = []

    def push(self, probs: np.ndarray) -> None:
        """Run the rule over the next windows' probabilities."""
        for prob in probs.tolist():
            pos = WINDOW_SAMPLES * self.window
            self.window += 1
            if prob >= self.threshold and self.temp_end:
                self.temp_end = 0
                if self.next_start < self.prev_end:
                    self.next_start = pos
            if prob >= self.threshold and not self.triggered:
                self.triggered = True
                self.start = pos
                continue
            if self.triggered and self.start is not None and pos - self.start > self.max_speech:
                if self.prev_end:
                    self.speeches.append([self.start, self.prev_end])
                    self.start = None
                    if self.next_start < self.prev_end:
                        self.triggered = False
                    else:
                        self.start = self.next_start
                    self.prev_end = self.next_start = self.temp_end = 0
                else:
                    self.speeches.append([self.start, pos])
                    self.start = None
                    self.prev_end = self.next_start = self.temp_end = 0
                    self.triggered = False
                    continue
            if prob < self.neg_threshold and self.triggered:
                if not self.temp_end:
                    self.temp_end = pos
                if pos - self.temp_end > self.min_silence_at_max_speech:
                    self.prev_end = self.temp_end
                if pos - self.temp_end < self.min_silence:
                    continue
                if self.start is not None and self.temp_end - self.start > self.min_speech:
                    self.speeches.append([self.start, self.temp_end])
                self.start = None
                self.prev_end = self.next_start = self.temp_end = 0
                self.triggered = False

    def finish(self, n_samples: int) -> list[tuple[int, int]]:
        """The segments ``(start, end)`` in samples of a waveform of ``n_samples``."""
        speeches = [list(s) for s in self.speeches]
        if self.start is not None and n_samples - self.start > self.min_speech:
            speeches.append([self.start, n_samples])
        pad = self.pad
        for i, speech in enumerate(speeches):
            if i == 0:
                speech[0] = int(max(0, speech[0] - pad))
            if i != len(speeches) - 1:
                silence = speeches[i + 1][0] - speech[1]
                if silence < 2 * pad:
                    speech[1] += int(silence // 2)
                    speeches[i + 1][0] = int(max(0, speeches[i + 1][0] - silence // 2))
                else:
                    speech[1] = int(min(n_samples, speech[1] + pad))
                    speeches[i + 1][0] = int(max(0, speeches[i + 1][0] - pad))
            else:
                speech[1] = int(min(n_samples, speech[1] + pad))
        return [(int(s), int(e)) for s, e in speeches]
