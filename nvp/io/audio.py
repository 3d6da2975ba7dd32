"""Reading audio from video or audio files, and writing WAV files.

:func:`load_audio` decodes the first audio stream of any file FFmpeg reads (MP4, MPEG,
MKV, WAV, FLAC, Ogg, MP3, ...), averages the channels to mono and resamples to the
requested rate with FFmpeg's resampler. :func:`iter_audio` gives the same samples as
fixed-size chunks without ever holding the whole track, for recordings of any length;
:func:`audio_info` describes the audio track from the container without decoding it.
"""

from __future__ import annotations

import os
import wave
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
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

__all__ = ["AudioInfo", "audio_info", "iter_audio", "load_audio", "write_wav"]

#: Containers whose stream durations are exact, so that encoder padding at the end of
#: the last compressed frame can be trimmed (MP4/MOV with an edit list).
_EXACT_DURATION_FORMATS = ("mov", "mp4", "m4a")

#: At most this much audio (seconds) beyond the declared duration counts as encoder
#: padding and is trimmed; a longer excess means the declared duration is wrong.
_MAX_PADDING_S = 0.1


# --------------------------------------------------------------------------- info


@dataclass(frozen=True)
class AudioInfo:
    """What :func:`audio_info` finds out about the first audio track of a file.

    Attributes:
        duration_s: duration of the audio track in seconds, as the container declares it
            (measured from the packet timestamps where it declares none).
        sample_rate: the track's own sample rate in Hz (before any resampling).
        channels: its channel count.
        codec: FFmpeg's name of the audio codec (``"aac"``, ``"pcm_s16le"``, ``"opus"``...).
    """

    duration_s: float
    sample_rate: int
    channels: int
    codec: str


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Describe the first audio track of a video or audio file, without decoding it.

    Only the container's header is read, unless it states no duration: then the packets
    of the audio track are read (no decoding) to measure it from their timestamps.

    Args:
        path: a video or audio file in any format FFmpeg reads.

    Raises:
        InputError: the file is missing, a folder, empty, not a media file, has no audio
            track, or an audio track that FFmpeg cannot decode.
    """
    p = _check_input_file(path)
    with _open_input(p) as container:
        stream = _audio_stream(container, p)
        ctx = stream.codec_context
        rate = int(stream.rate or ctx.sample_rate or 0)
        if rate <= 0:
            raise InputError("the audio track has no sample rate (corrupt header?)", path=p)
        channels = int(ctx.channels or 0)
        duration = 0.0
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        else:
            duration = _packet_duration(container, stream, p)
        return AudioInfo(
            duration_s=duration, sample_rate=rate, channels=channels, codec=str(ctx.name)
        )


def _audio_stream(
    container: av.container.InputContainer, path: Path
) -> av.audio.stream.AudioStream:
    """The first audio stream of ``container``, with a decoder FFmpeg knows."""
    if not container.streams.audio:
        raise InputError("no audio track in this file", path=path)
    stream = container.streams.audio[0]
    if stream.codec_context is None:
        raise InputError("the audio codec of this file is not supported by FFmpeg", path=path)
    return stream


def _packet_duration(
    container: av.container.InputContainer, stream: av.audio.stream.AudioStream, path: Path
) -> float:
    """Seconds from the first packet's timestamp to the end of the last packet."""
    tb = stream.time_base or Fraction(1, stream.rate or 1)
    first = end = None
    try:
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            first = packet.pts if first is None else min(first, packet.pts)
            stop = packet.pts + (packet.duration or 0)
            end = stop if end is None else max(end, stop)
    except av.error.FFmpegError as exc:
        raise InputError(f"corrupt audio data ({_ffmpeg_reason(exc)})", path=path) from exc
    return float((end - first) * tb) if first is not None else 0.0


# --------------------------------------------------------------------------- decoding


def load_audio(path: str | os.PathLike, sample_rate: int = 16000) -> np.ndarray:
    """Decode the first audio track of a file as mono float32 samples.

    The channels are averaged and the result resampled to ``sample_rate``. Samples
    start with the first sample of the audio stream (an offset of the audio against
    the video in the container is not applied). Decoding is streamed chunk by chunk.
    For MP4/MOV files the padding that AAC encoders add after the last sample is
    trimmed using the stream's declared duration, so a file written by
    :func:`nvp.io.write_video` gives back as many samples as were written.

    This is ``np.concatenate(list(iter_audio(path, sample_rate)))``, sample for sample.

    Args:
        path: a video or audio file.
        sample_rate: output sample rate in Hz.

    Returns:
        (S,) float32 array in [-1, 1].

    Raises:
        InputError: the file is missing, unreadable, has no audio track, or its audio
            data is corrupt (the message names the time reached).
    """
    p, declared = _open_audio(path, sample_rate)
    pieces = list(_samples(p, int(sample_rate), declared))
    audio = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    if audio.size == 0:
        raise InputError("the audio track holds no samples", path=p)
    return np.clip(audio, -1.0, 1.0, out=audio)


def iter_audio(
    path: str | os.PathLike, sample_rate: int = 16000, chunk_seconds: float = 10.0
) -> Iterator[np.ndarray]:
    """Stream the first audio track of a file as fixed-size chunks of mono samples.

    The samples are those of :func:`load_audio` (same decoding, channel averaging,
    resampling and trimming of MP4 encoder padding): concatenated, the chunks equal
    ``load_audio(path, sample_rate)`` exactly. Memory stays bounded whatever the length
    of the file: about one chunk plus FFmpeg's decoding buffers (the MP4 padding trim
    holds back at most 0.1 s at the end of the declared duration).

    The file is opened and checked when this function is called (a missing file or one
    without audio raises at once); decoding happens lazily while iterating.

    Args:
        path: a video or audio file.
        sample_rate: output sample rate in Hz.
        chunk_seconds: length of the chunks in seconds.

    Yields:
        (C,) float32 arrays in [-1, 1] with ``C = round(chunk_seconds * sample_rate)``
        samples; the last one holds the rest (1 to C samples). Each is a fresh array.

    Raises:
        InputError: as :func:`load_audio`; errors found while decoding (corrupt data, no
            samples at all) are raised during the iteration.
    """
    size = round(chunk_seconds * sample_rate)
    if size < 1:
        raise ValueError(
            f"chunk_seconds * sample_rate must be at least one sample, got {chunk_seconds} s"
        )
    p, declared = _open_audio(path, sample_rate)
    return _chunks(p, int(sample_rate), declared, size)


def _open_audio(path: str | os.PathLike, sample_rate: int) -> tuple[Path, int | None]:
    """Check the file and its audio track: (path, declared samples at ``sample_rate``)."""
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    p = _check_input_file(path)
    with _open_input(p) as container:
        stream = _audio_stream(container, p)
        declared = _declared_samples(container, stream, int(sample_rate))
    return p, declared


def _chunks(p: Path, sample_rate: int, declared: int | None, size: int) -> Iterator[np.ndarray]:
    """The generator behind :func:`iter_audio`: ``_samples`` re-cut into ``size`` chunks."""
    pending: list[np.ndarray] = []
    have = 0
    total = 0
    for piece in _samples(p, sample_rate, declared):
        pending.append(piece)
        have += piece.size
        while have >= size:
            joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
            chunk, rest = joined[:size], joined[size:]
            pending = [rest.copy()] if rest.size else []
            have = rest.size
            total += size
            yield np.clip(chunk, -1.0, 1.0, out=chunk)
    if have:
        chunk = np.concatenate(pending)
        total += chunk.size
        yield np.clip(chunk, -1.0, 1.0, out=chunk)
    if total == 0:
        raise InputError("the audio track holds no samples", path=p)


def _samples(p: Path, sample_rate: int, declared: int | None) -> Iterator[np.ndarray]:
    """Decoded mono float32 pieces (any sizes, not clipped), MP4 padding trimmed."""
    return _trim_padding(_decode_mono(p, sample_rate), declared, _MAX_PADDING_S * sample_rate)


def _decode_mono(p: Path, sample_rate: int) -> Iterator[np.ndarray]:
    """The first audio track, channels averaged, resampled: float32 pieces as decoded."""
    with _open_input(p) as container:
        stream = _audio_stream(container, p)
        resampler = av.AudioResampler(format="fltp", layout=None, rate=sample_rate)
        n = 0
        try:
            for frame in container.decode(stream):
                frame.pts = None  # let the resampler count samples; gaps are not filled
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().mean(axis=0, dtype=np.float32)
                    n += chunk.size
                    yield chunk
            for out in resampler.resample(None):
                chunk = out.to_ndarray().mean(axis=0, dtype=np.float32)
                n += chunk.size
                yield chunk
        except av.error.FFmpegError as exc:
            raise InputError(
                f"corrupt audio data after t={n / sample_rate:.3f}s ({_ffmpeg_reason(exc)})",
                path=p,
            ) from exc


def _trim_padding(
    pieces: Iterable[np.ndarray], declared: int | None, slack: float
) -> Iterator[np.ndarray]:
    """Pass ``pieces`` on, dropping an excess of at most ``slack`` samples past ``declared``.

    Samples up to ``declared`` go through at once. Those after it are held back until
    more than ``slack`` of them have come (the declared duration is then not trusted and
    everything is kept) or the stream ends (they are encoder padding and are dropped).
    """
    if declared is None:
        yield from pieces
        return
    passed = 0
    held: list[np.ndarray] | None = []  # None once the excess is known to be kept
    n_held = 0
    for piece in pieces:
        if held is None:
            yield piece
            continue
        if passed < declared:
            k = min(piece.size, declared - passed)
            passed += k
            if k == piece.size:
                yield piece
                continue
            yield piece[:k]
            piece = piece[k:]
        held.append(piece)
        n_held += piece.size
        if n_held > slack:
            yield from held
            held = None


def _declared_samples(
    container: av.container.InputContainer, stream: av.audio.stream.AudioStream, rate: int
) -> int | None:
    """Samples at ``rate`` that the container says the stream holds, where that is exact."""
    names = set(container.format.name.split(","))
    if not names & set(_EXACT_DURATION_FORMATS) or not stream.duration or not stream.time_base:
        return None
    return round(Fraction(stream.duration) * stream.time_base * rate)


# --------------------------------------------------------------------------- writing


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
