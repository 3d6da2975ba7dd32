"""Reading audio from video or audio files, and writing WAV files.

:func:`load_audio` decodes the first audio stream of any file FFmpeg reads (MP4, MPEG,
MKV, WAV, FLAC, Ogg, MP3, ...), averages the channels to mono and resamples to the
requested rate with FFmpeg's resampler.
"""

from __future__ import annotations

import os
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from nvp.errors import InputError
from nvp.io.video import (
    _check_input_file,
    _ffmpeg_reason,
    _open_input,
    _prepare_audio,
    _temp_output,
)

__all__ = ["load_audio", "write_wav"]

#: Containers whose stream durations are exact, so that encoder padding at the end of
#: the last compressed frame can be trimmed (MP4/MOV with an edit list).
_EXACT_DURATION_FORMATS = ("mov", "mp4", "m4a")


def load_audio(path: str | os.PathLike, sample_rate: int = 16000) -> np.ndarray:
    """Decode the first audio track of a file as mono float32 samples.

    The channels are averaged and the result resampled to ``sample_rate``. Samples
    start with the first sample of the audio stream (an offset of the audio against
    the video in the container is not applied). Decoding is streamed chunk by chunk.
    For MP4/MOV files the padding that AAC encoders add after the last sample is
    trimmed using the stream's declared duration, so a file written by
    :func:`nvp.io.write_video` gives back as many samples as were written.

    Args:
        path: a video or audio file.
        sample_rate: output sample rate in Hz.

    Returns:
        (S,) float32 array in [-1, 1].

    Raises:
        InputError: the file is missing, unreadable, has no audio track, or its audio
            data is corrupt (the message names the time reached).
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    p = _check_input_file(path)
    with _open_input(p) as container:
        if not container.streams.audio:
            raise InputError("no audio track in this file", path=p)
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", layout=None, rate=int(sample_rate))
        chunks: list[np.ndarray] = []
        n = 0
        try:
            for frame in container.decode(stream):
                frame.pts = None  # let the resampler count samples; gaps are not filled
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().mean(axis=0, dtype=np.float32)
                    chunks.append(chunk)
                    n += chunk.size
            for out in resampler.resample(None):
                chunk = out.to_ndarray().mean(axis=0, dtype=np.float32)
                chunks.append(chunk)
                n += chunk.size
        except av.error.FFmpegError as exc:
            raise InputError(
                f"corrupt audio data after t={n / sample_rate:.3f}s ({_ffmpeg_reason(exc)})",
                path=p,
            ) from exc
        declared = _declared_samples(container, stream, sample_rate)
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if declared is not None and 0 < audio.size - declared <= 0.1 * sample_rate:
        audio = audio[:declared]
    if audio.size == 0:
        raise InputError("the audio track holds no samples", path=p)
    return np.clip(audio, -1.0, 1.0, out=audio)


def _declared_samples(
    container: av.container.InputContainer, stream: av.audio.stream.AudioStream, rate: int
) -> int | None:
    """Samples at ``rate`` that the container says the stream holds, where that is exact."""
    names = set(container.format.name.split(","))
    if not names & set(_EXACT_DURATION_FORMATS) or not stream.duration or not stream.time_base:
        return None
    return round(Fraction(stream.duration) * stream.time_base * rate)


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int = 16000) -> Path:
    """Write mono audio as a 16-bit PCM WAV file, atomically.

    Args:
        path: output file (parent folders are created).
        audio: (S,) float samples in [-1, 1] (clipped), or int16 samples.
        sample_rate: sample rate in Hz.

    Returns:
        The path written.
    """
    samples = _prepare_audio(audio)
    pcm = np.round(samples * 32767.0).astype("<i2")
    with _temp_output(path) as tmp, wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.tobytes())
    return Path(path)
