"""Reading and writing video files with PyAV (FFmpeg).

Reading
    :func:`probe` describes a file; :func:`iter_frames` streams its frames as RGB arrays,
    optionally resampled to a constant frame rate by timestamps, so that 30 fps and
    variable-frame-rate recordings line up with 25 fps audio features.
    :class:`FrameReader` gives random access (``reader[i]``) to the same resampled
    frames, by seeking and a small block cache, e.g. to play a target video backwards.

Writing
    :func:`write_video` encodes RGB frames to H.264 in an MP4 file, with a mono AAC audio
    track when audio is given (an array, or chunks pulled as the frames advance). The
    file appears atomically: it is written under a temporary name in the same folder and
    renamed when complete.

Errors in the input (missing file, folder, not a media file, corrupt data, no video
stream) raise :class:`nvp.errors.InputError` naming the file.
"""

from __future__ import annotations

import bisect
import logging
import math
import operator
import os
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from nvp.errors import InputError

log = logging.getLogger(__name__)

__all__ = [
    "FrameReader",
    "VideoInfo",
    "iter_frames",
    "probe",
    "resampled_frame_count",
    "write_video",
]

#: Container formats for output suffixes that FFmpeg does not guess on its own.
_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}

#: Video outputs nvp writes (H.264 + AAC), by suffix, for up-front checks of output paths.
OUTPUT_SUFFIXES = {".mp4": "MP4", ".m4v": "MP4", ".mov": "QuickTime", ".mkv": "Matroska"}

#: Demuxers (FFmpeg names) that seek by an index of timestamped packets, so that the
#: frames decoded after a seek carry their true timestamps. MPEG program/transport
#: streams, for one, can mislabel the first frames after a seek.
_SEEKABLE_FORMATS = frozenset({"mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm"})


# --------------------------------------------------------------------------- helpers


def _check_input_file(path: str | os.PathLike) -> Path:
    """Return ``path`` as a :class:`Path` if it names an existing, non-empty file.

    Raises:
        InputError: the path does not exist, is a folder, or is an empty file.
    """
    p = Path(path)
    if not p.exists():
        raise InputError("file not found", path=p)
    if p.is_dir():
        raise InputError("is a folder, expected a video or audio file", path=p)
    if not p.is_file():
        raise InputError("not a regular file", path=p)
    if p.stat().st_size == 0:
        raise InputError("file is empty", path=p)
    return p


def _ffmpeg_reason(exc: BaseException) -> str:
    """A short reason from an FFmpeg error, without the errno and C function name."""
    reason = getattr(exc, "strerror", None) or str(exc)
    return str(reason).strip().rstrip(".")


def _open_input(path: Path) -> av.container.InputContainer:
    """Open a media file for reading; FFmpeg's errors become :class:`InputError`."""
    try:
        return av.open(str(path), mode="r")
    except av.error.FFmpegError as exc:
        raise InputError(
            f"not a readable video or audio file ({_ffmpeg_reason(exc)})", path=path
        ) from exc
    except OSError as exc:  # pragma: no cover - permissions and the like
        raise InputError(f"cannot open file ({exc.strerror or exc})", path=path) from exc


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_stale_partials(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files an earlier writer of ``path`` left when it was killed
    (``.<stem>.partial-<pid>-<id><suffix>`` whose process is gone); files of a writer that is
    still running, and of other outputs, are left alone. Returns the files deleted."""
    final = Path(path)
    gone = []
    for f in final.parent.glob(f".{final.stem}.partial-*{final.suffix}"):
        tag = f.name[len(f".{final.stem}.partial-") :].split("-", 1)[0]
        if tag.isdigit() and (int(tag) == os.getpid() or _pid_alive(int(tag))):
            continue
        try:
            f.unlink()
            gone.append(f)
        except OSError:
            pass
    if gone:
        log.info("removed %d partial file(s) of an interrupted earlier run: %s", len(gone), gone)
    return gone


@contextmanager
def _temp_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary name keeps the suffix of ``path`` (FFmpeg chooses the container format
    from it) and is removed when the block raises, so ``path`` is either the complete new
    file or whatever it was before. It carries the process id, so that a later writer of
    ``path`` deletes what a killed one left (:func:`remove_stale_partials`).
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(final)
    tmp = final.with_name(
        f".{final.stem}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}{final.suffix}"
    )
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def _video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    """The first video stream that is a real video, not an embedded cover picture."""
    attached = getattr(getattr(av.stream, "Disposition", None), "attached_pic", None)
    for stream in container.streams.video:
        if attached is not None and stream.disposition & attached:
            continue
        return stream
    return None


def _frame_rgb(frame: av.VideoFrame, rotation: int) -> np.ndarray:
    """A decoded frame as an (H, W, 3) uint8 RGB array, turned upright."""
    rgb = frame.to_ndarray(format="rgb24")
    k = (rotation // 90) % 4
    if k:
        rgb = np.ascontiguousarray(np.rot90(rgb, k))
    return rgb


# --------------------------------------------------------------------------- probe


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` finds out about a video file.

    Attributes:
        path: the file.
        width, height: size of the frames as :func:`iter_frames` yields them (upright,
            that is after the display rotation of phone recordings is applied).
        fps: average frame rate (frames per second).
        duration_s: duration of the video stream in seconds: from the first frame's
            timestamp to the end of the last frame.
        n_frames: number of frames of the video stream (counted when the file was
            scanned, otherwise the container's figure or an estimate).
        has_audio: whether the file has an audio stream.
        audio_rate: sample rate of the audio stream in Hz, ``None`` without audio.
        audio_channels: channel count of the audio stream, ``None`` without audio.
        video_codec: FFmpeg's name of the video codec (``"h264"``, ``"mpeg1video"``, ...).
        variable_frame_rate: whether the frame intervals vary by more than 10 %
            (only detected when the file was scanned; ``False`` otherwise).
        rotation: counter-clockwise rotation in degrees (0, 90, 180, 270) applied to the
            decoded frames to show them upright (detected when the file was scanned).
        audio_duration_s: duration of the audio stream in seconds, if the file says.
    """

    path: str
    width: int
    height: int
    fps: float
    duration_s: float
    n_frames: int
    has_audio: bool
    audio_rate: int | None
    audio_channels: int | None
    video_codec: str
    variable_frame_rate: bool
    rotation: int = 0
    audio_duration_s: float | None = None


def probe(path: str | os.PathLike, *, scan: bool = True) -> VideoInfo:
    """Describe a video file.

    Args:
        path: a video file in any format FFmpeg reads.
        scan: read all packets of the video stream (no decoding; fast) to count the
            frames exactly, measure the duration from the timestamps and detect a
            variable frame rate. With ``False`` only the container's header is read and
            ``n_frames``/``duration_s`` may be estimates.

    Raises:
        InputError: the file is missing, a folder, not a media file, corrupt, or has no
            video stream.
    """
    p = _check_input_file(path)
    with _open_input(p) as container:
        stream = _video_stream(container)
        if stream is None:
            raise InputError("no video stream (an audio file or not a video)", path=p)
        tb = stream.time_base or Fraction(1, 90000)
        width = int(stream.codec_context.width)
        height = int(stream.codec_context.height)
        if width <= 0 or height <= 0:
            raise InputError("video stream has no frame size (corrupt header?)", path=p)
        codec = stream.codec_context.name

        audio = container.streams.audio[0] if container.streams.audio else None
        audio_rate = int(audio.rate) if audio is not None and audio.rate else None
        audio_channels = int(audio.channels) if audio is not None else None
        audio_duration = None
        if audio is not None and audio.duration and audio.time_base:
            audio_duration = float(audio.duration * audio.time_base)

        avg = float(stream.average_rate) if stream.average_rate else 0.0
        n_frames = 0
        duration = 0.0
        vfr = False
        rotation = 0
        if scan:
            n_frames, duration, vfr, mean_rate, rotation = _scan(container, stream, p)
            if mean_rate > 0 and (vfr or avg <= 0 or abs(avg - mean_rate) > 1e-3 * mean_rate):
                avg = mean_rate
        if duration <= 0:
            if stream.duration:
                duration = float(stream.duration * tb)
            elif container.duration:
                duration = container.duration / av.time_base
        if avg <= 0:
            guessed = stream.guessed_rate or stream.base_rate
            avg = float(guessed) if guessed else (n_frames / duration if duration else 0.0)
        if n_frames <= 0:
            n_frames = int(stream.frames) or round(duration * avg)
        if n_frames <= 0 or duration <= 0 or avg <= 0:
            raise InputError("video stream has no frames", path=p)
    if rotation % 180:
        width, height = height, width
    return VideoInfo(
        path=str(p),
        width=width,
        height=height,
        fps=avg,
        duration_s=duration,
        n_frames=n_frames,
        has_audio=audio is not None,
        audio_rate=audio_rate,
        audio_channels=audio_channels,
        video_codec=codec,
        variable_frame_rate=vfr,
        rotation=rotation,
        audio_duration_s=audio_duration,
    )


def _scan(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, path: Path
) -> tuple[int, float, bool, float, int]:
    """Read the packets of ``stream``: (frames, duration s, VFR?, mean rate, rotation)."""
    tb = stream.time_base or Fraction(1, 90000)
    stamps: list[int] = []
    durations: dict[int, int] = {}
    untimed = 0
    rotation = 0
    pending_rotation = 16  # packets to decode, at most, to find the display rotation
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard:
                continue
            if pending_rotation:
                # The display rotation (phone recordings) is side data of decoded frames.
                pending_rotation -= 1
                rotation, found = _packet_rotation(packet)
                if found:
                    pending_rotation = 0
            ts = packet.pts if packet.pts is not None else packet.dts
            if ts is None:
                untimed += 1
                continue
            stamps.append(ts)
            durations[ts] = packet.duration or 0
    except av.error.FFmpegError as exc:
        at = float((max(stamps) - min(stamps)) * tb) if stamps else 0.0
        raise InputError(
            f"corrupt or truncated video data near t={at:.2f}s ({_ffmpeg_reason(exc)})",
            path=path,
        ) from exc
    n = len(stamps) + untimed
    if not stamps:
        return n, 0.0, False, 0.0, rotation
    stamps.sort()
    diffs = np.diff(np.asarray(stamps, dtype=np.int64))
    diffs = diffs[diffs > 0]
    if diffs.size:
        typical = float(np.median(diffs))
        spread = float(diffs.max() - diffs.min())
        vfr = spread > max(2.0, 0.1 * typical)
    else:
        rate = stream.average_rate or stream.guessed_rate or 25
        typical = float(1 / (rate * tb))
        vfr = False
    last = stamps[-1]
    last_duration = durations.get(last) or typical
    duration = float((last + last_duration - stamps[0]) * tb)
    if untimed:
        # Some packets carry no timestamp: fall back on the header's figure if larger.
        declared = float(stream.duration * tb) if stream.duration else 0.0
        duration = max(duration, declared)
    mean_rate = n / duration if duration > 0 else 0.0
    return n, duration, vfr, mean_rate, rotation


def _packet_rotation(packet: av.Packet) -> tuple[int, bool]:
    """Decode one packet: (rotation in degrees of its frame, whether a frame came out)."""
    try:
        for frame in packet.decode():
            return round((frame.rotation or 0) / 90.0) * 90 % 360, True
    except av.error.FFmpegError:
        pass  # corrupt data is reported by iter_frames, with its time
    return 0, False


def resampled_frame_count(info: VideoInfo, fps: float) -> int:
    """How many frames :func:`iter_frames` yields for ``info`` at ``fps``.

    This is ``floor(duration_s * fps)`` (with a tolerance of 1e-6 frames for timestamp
    rounding), at least 1: output frame ``i`` is taken at ``i / fps`` seconds, and only
    times before the end of the video count.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return max(1, math.floor(info.duration_s * fps + 1e-6))


# --------------------------------------------------------------------------- reading


def iter_frames(
    path: str | os.PathLike,
    fps: float | None = None,
    *,
    max_frames: int | None = None,
) -> Iterator[tuple[int, float, np.ndarray]]:
    """Stream the frames of a video as ``(index, time_s, rgb)``.

    Without ``fps`` every decoded frame is yielded: ``index`` counts them and ``time_s``
    is the frame's timestamp relative to the first frame.

    With ``fps`` the video is resampled by timestamps to that constant rate: output frame
    ``i`` is at ``time_s = i / fps`` (relative to the first frame's timestamp) and shows
    the *previous* frame, the latest one whose timestamp is at or before ``time_s`` (with
    half a time-base tick of tolerance for rounding), as a player would display it.
    Frames are repeated or dropped as needed, which handles variable-frame-rate input as
    well as 30 -> 25 fps. Exactly :func:`resampled_frame_count` frames are yielded.

    The file is probed when this function is called (so a missing or unreadable file
    raises at once); decoding happens lazily while iterating. Frames are converted to RGB
    only when yielded and at most two decoded frames are held at a time (besides the
    decoder's own buffers). A repeated frame is yielded as a fresh copy, so callers may
    modify the arrays.

    Args:
        path: a video file.
        fps: output frame rate, or ``None`` for the frames as stored.
        max_frames: stop after this many output frames.

    Yields:
        ``(i, time_s, frame)`` with ``frame`` an (H, W, 3) uint8 RGB array.

    Raises:
        InputError: the file cannot be read, or its data is corrupt; the message names
            the file and the time of the last good frame.
    """
    if fps is not None and fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    info = probe(path)
    limit = resampled_frame_count(info, fps) if fps is not None else None
    if max_frames is not None:
        limit = max_frames if limit is None else min(limit, max_frames)
    return _frames(info, None if fps is None else float(fps), limit)


def _frames(
    info: VideoInfo, fps: float | None, limit: int | None
) -> Iterator[tuple[int, float, np.ndarray]]:
    """The generator behind :func:`iter_frames` (which checks the file when called)."""
    if limit is not None and limit <= 0:
        return
    path = Path(info.path)
    with _open_input(path) as container:
        stream = _video_stream(container)
        if stream is None:  # pragma: no cover - probe checked; the file changed since
            raise InputError("no video stream", path=path)
        stream.thread_type = "AUTO"
        tb = stream.time_base or Fraction(1, 90000)
        if fps is None:
            yield from _iter_native(container, stream, tb, path, info.rotation, limit)
        else:
            assert limit is not None
            yield from _iter_resampled(container, stream, tb, path, info, fps, limit)


def _frame_seconds(frame: av.VideoFrame, tb: Fraction) -> float | None:
    """The timestamp of a decoded frame in seconds, ``None`` if it has none."""
    if frame.pts is not None:
        return float(frame.pts * tb)
    if frame.time is not None:
        return float(frame.time)
    return None


def _decode(
    container, stream, tb: Fraction, path: Path, t0: float | None = None
) -> Iterator[tuple[float, av.VideoFrame]]:
    """Decoded frames with their times in seconds relative to ``t0``.

    ``t0`` defaults to the time of the first frame decoded. Times never decrease: a frame
    stamped earlier than the one before it (or unstamped) gets the previous time.
    """
    last = 0.0
    try:
        for frame in container.decode(stream):
            t = _frame_seconds(frame, tb)
            if t0 is None:
                t0 = t if t is not None else 0.0
            t = last if t is None else max(t - t0, last)
            last = t
            yield t, frame
    except av.error.FFmpegError as exc:
        raise InputError(
            f"corrupt video data after t={last:.3f}s ({_ffmpeg_reason(exc)})", path=path
        ) from exc


def _iter_native(container, stream, tb, path, rotation, limit):
    for i, (t, frame) in enumerate(_decode(container, stream, tb, path)):
        if limit is not None and i >= limit:
            return
        yield i, t, _frame_rgb(frame, rotation)


def _iter_resampled(container, stream, tb, path, info: VideoInfo, fps: float, limit: int):
    tol = float(tb) / 2 + 1e-9
    held: av.VideoFrame | None = None  # the latest decoded frame at or before t_i
    held_rgb: np.ndarray | None = None  # its RGB conversion once yielded
    held_t = 0.0
    i = 0
    decoded = 0
    for t, frame in _decode(container, stream, tb, path):
        decoded += 1
        # Output times before this frame show the frame held so far.
        while held is not None and i < limit and i / fps < t - tol:
            if held_rgb is None:
                held_rgb = _frame_rgb(held, info.rotation)
                yield i, i / fps, held_rgb
            else:
                yield i, i / fps, held_rgb.copy()
            i += 1
        if i >= limit:
            return
        held, held_rgb, held_t = frame, None, t
    if held is None:
        raise InputError("no video frame could be decoded", path=path)
    # The last frame lasts until the end of the video. A decoder that delivered far
    # fewer frames than the file holds met data it could not decode: report it rather
    # than hold the last good frame for the rest of the video.
    if decoded < info.n_frames - max(2, 0.05 * info.n_frames):
        raise InputError(
            f"only {decoded} of {info.n_frames} video frames could be decoded; "
            f"the last one at t={held_t:.3f}s (corrupt or truncated file?)",
            path=path,
        )
    while i < limit:
        if held_rgb is None:
            held_rgb = _frame_rgb(held, info.rotation)
            yield i, i / fps, held_rgb
        else:
            yield i, i / fps, held_rgb.copy()
        i += 1


# --------------------------------------------------------------------------- random access


class _Cursor:
    """A decoding position of a :class:`FrameReader`, ready to give output ``next_i``.

    It runs the resampling rule of :func:`iter_frames` from a decoded frame ``first``
    whose time is at or before that of output ``next_i``.
    """

    def __init__(
        self,
        frames: Iterator[tuple[float, av.VideoFrame]],
        first: tuple[float, av.VideoFrame],
        next_i: int,
        *,
        from_start: bool,
    ) -> None:
        self.frames = frames  # decoded (time s, frame) after ``first``
        self.pending: tuple[float, av.VideoFrame] | None = first  # decoded, not yet held
        self.held: av.VideoFrame | None = None  # the latest frame at or before next_i
        self.held_t = 0.0
        self.held_rgb: np.ndarray | None = None  # its RGB conversion, once needed
        self.next_i = next_i
        self.time = first[0]  # time of the latest decoded frame, seconds
        self.decoded = 1  # frames decoded by this cursor
        self.eof = False
        self.from_start = from_start  # whether decoding began at the file's first frame

    def close(self) -> None:
        close = getattr(self.frames, "close", None)
        if close is not None:
            close()


class FrameReader:
    """Random access to the frames of a video resampled to a constant frame rate.

    ``reader[i]`` is the frame that ``iter_frames(path, fps)`` yields as output ``i``
    (the same pixels, by the same previous-frame rule, with times measured from the first
    frame's timestamp), and ``len(reader)`` is :func:`resampled_frame_count`. Frames are
    decoded in blocks of ``block_size`` output frames, kept in a small LRU cache:

    - a block that follows the current decoding position is decoded on from there,
      without seeking, so a forward pass decodes every frame of the file once;
    - another missed block is found by seeking (backwards) to the keyframe at or before
      its first output time and decoding forward; the keyframes are listed once, from the
      packets, when the reader is opened (no decoding). Seeking is used for MP4/MOV and
      Matroska/WebM files; in other containers (MPEG-PS/TS, AVI, ...) a block before the
      decoding position is decoded again from the start of the file;
    - when the reads move backwards (a miss on the block just before that of the
      previous read: reverse or ping-pong playback), the blocks between that keyframe and
      the missed one are cached on the way (up to ``cache_blocks``). A reverse pass then
      decodes about ``1 + G / (2 * block_size * cache_blocks)`` times as many frames as
      a forward pass, for keyframes every G frames (measured: 1.75 for libx264's
      G = 250 with the defaults), instead of a keyframe interval per block.

    After a seek the first decoded frame is checked (one of the listed keyframes, at or
    before the time wanted); where the demuxer seeks inexactly, earlier keyframes are
    tried and, last, the file is decoded from its start.

    The reader holds the file open: use it as a context manager or call :meth:`close`.
    It is not thread-safe; give each worker its own reader.

    Args:
        path: a video file.
        fps: output frame rate.
        block_size: output frames per cached block.
        cache_blocks: blocks kept in the cache. The memory held is at most
            ``block_size * cache_blocks`` decoded (H, W, 3) uint8 frames (a frame
            repeated by the resampling is stored once).

    Attributes:
        info: :func:`probe`'s description of the file.
        fps: the output frame rate.
        decoded_frames: frames decoded so far (the cost of the reads).
        seeks: seeks done so far (reopening the file to decode from its start included).

    Raises:
        InputError: as :func:`iter_frames`: when opened (missing or unreadable file, no
            video stream) or when frames are read (corrupt data).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float,
        *,
        block_size: int = 32,
        cache_blocks: int = 4,
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if block_size < 1 or cache_blocks < 1:
            raise ValueError(
                f"block_size and cache_blocks must be at least 1, got {block_size}, {cache_blocks}"
            )
        self._container: av.container.InputContainer | None = None
        self._cursor: _Cursor | None = None
        self._cache: OrderedDict[int, list[np.ndarray]] = OrderedDict()
        self.info = probe(path)
        self.fps = float(fps)
        self.block_size = int(block_size)
        self.cache_blocks = int(cache_blocks)
        self.decoded_frames = 0
        self.seeks = 0
        self._path = Path(self.info.path)
        self._n = resampled_frame_count(self.info, self.fps)
        self._last_index: int | None = None
        key_pts, self._seekable = self._keyframe_pts()
        self._restart()  # opens the file: stream, time base, t0, a cursor at output 0
        self.seeks = 0
        # Keyframes as (time relative to the first frame, pts), in time order.
        self._keyframes = sorted((float(pts * self._tb) - self._t0, pts) for pts in key_pts)
        self._key_times = [t for t, _ in self._keyframes]
        self._key_pts = frozenset(key_pts)

    # -- sequence protocol

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: int) -> np.ndarray:
        """Output frame ``index`` (negative counts from the end) as a fresh (H, W, 3) uint8
        RGB array."""
        i = operator.index(index)
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(f"frame index {index} out of range for {self._n} frames")
        if self._container is None:
            raise ValueError("the FrameReader is closed")
        k = i // self.block_size
        block = self._cache.get(k)
        if block is None:
            # Reading backwards: the previous read was in the next block.
            last = self._last_index
            backwards = last is not None and last // self.block_size == k + 1
            block = self._load_block(k, backwards)
        else:
            self._cache.move_to_end(k)
        self._last_index = i
        return block[i - k * self.block_size].copy()

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(self._n):
            yield self[i]

    # -- life cycle

    def close(self) -> None:
        """Close the file and drop the cache; reading afterwards raises ValueError."""
        self._release()
        self._cache.clear()

    def _release(self) -> None:
        """Close the decoding cursor and the container, if open."""
        if self._cursor is not None:
            self._cursor.close()
            self._cursor = None
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with suppress(Exception):  # during interpreter shutdown modules may be gone
            self.close()

    # -- blocks

    def _load_block(self, k: int, backwards: bool) -> list[np.ndarray]:
        """Decode block ``k`` (and, reading backwards, the blocks before it on the way)."""
        size = self.block_size
        a, b = k * size, min((k + 1) * size, self._n)
        if not self._can_continue(a):
            self._seek_before(a)
        cursor = self._cursor
        assert cursor is not None
        keep_from = a
        if backwards:
            first_whole = -(-cursor.next_i // size)  # the first block the cursor fills whole
            keep_from = max(first_whole, k - self.cache_blocks + 1) * size
        blocks: dict[int, list[np.ndarray]] = {}
        while cursor.next_i < b:
            i = cursor.next_i
            rgb = self._step(cursor, convert=i >= keep_from)
            if rgb is not None:
                blocks.setdefault(i // size, []).append(rgb)
        for j in sorted(blocks):
            self._cache[j] = blocks[j]
            self._cache.move_to_end(j)
        while len(self._cache) > self.cache_blocks:
            self._cache.popitem(last=False)
        return blocks[k]

    def _can_continue(self, a: int) -> bool:
        """Whether to decode on from the cursor to reach output ``a``, rather than seek.

        Yes when ``a`` is the cursor's next output (sequential reading never seeks), when
        seeking is not possible, and when no keyframe lies between the cursor's position
        and ``a`` (a seek would land at or before the cursor). No when the cursor is
        past ``a``.
        """
        cursor = self._cursor
        if cursor is None or cursor.next_i > a:
            return False
        if a == cursor.next_i or not self._seekable:
            return True
        j = bisect.bisect_right(self._key_times, a / self.fps + self._tol) - 1
        return j < 0 or self._key_times[j] <= cursor.time

    def _seek_before(self, a: int) -> None:
        """Put the cursor at the keyframe at or before output ``a`` (checked)."""
        wanted = a / self.fps + self._tol
        j = bisect.bisect_right(self._key_times, wanted) - 1 if self._seekable else -1
        for _ in range(3):  # this keyframe, else up to two earlier ones
            if j < 0 or self._key_times[j] <= self._tol:
                break  # the first keyframe: decode from the start, exactly as iter_frames
            if self._try_seek(self._keyframes[j][1], wanted):
                return
            j -= 1
        self._restart()

    def _try_seek(self, pts: int, wanted: float) -> bool:
        """Seek to the keyframe at ``pts``; keep the cursor there if its first frame is a
        keyframe at or before ``wanted`` seconds."""
        assert self._container is not None
        if self._cursor is not None:
            self._cursor.close()
            self._cursor = None
        self.seeks += 1
        try:
            self._container.seek(pts, stream=self._stream, backward=True)
        except av.error.FFmpegError:
            return False
        frames = self._decoded(self._t0)
        first = next(frames, None)
        if (
            first is None
            or first[0] > wanted
            or not first[1].key_frame
            or first[1].pts not in self._key_pts
        ):
            frames.close()
            return False
        t = first[0]
        i = max(0, math.ceil((t - self._tol) * self.fps))  # the first output at or after t
        while i > 0 and (i - 1) / self.fps >= t - self._tol:
            i -= 1
        while i / self.fps < t - self._tol:
            i += 1
        self._cursor = _Cursor(frames, first, i, from_start=False)
        return True

    def _restart(self) -> None:
        """(Re)open the file with the cursor at its first frame, as :func:`iter_frames`."""
        self._release()
        self.seeks += 1
        self._container = _open_input(self._path)
        stream = _video_stream(self._container)
        if stream is None:  # pragma: no cover - probe checked; the file changed since
            raise InputError("no video stream", path=self._path)
        stream.thread_type = "AUTO"
        self._stream = stream
        self._tb = stream.time_base or Fraction(1, 90000)
        self._tol = float(self._tb) / 2 + 1e-9
        frames = self._decoded(None)
        first = next(frames, None)
        if first is None:
            raise InputError("no video frame could be decoded", path=self._path)
        self._t0 = _frame_seconds(first[1], self._tb) or 0.0
        self._cursor = _Cursor(frames, first, 0, from_start=True)

    def _decoded(self, t0: float | None) -> Iterator[tuple[float, av.VideoFrame]]:
        """Frames decoded from the file's position, timed from ``t0`` (counted)."""
        assert self._container is not None
        for item in _decode(self._container, self._stream, self._tb, self._path, t0=t0):
            self.decoded_frames += 1
            yield item

    def _step(self, cursor: _Cursor, *, convert: bool) -> np.ndarray | None:
        """Advance ``cursor`` by one output frame; its RGB array if ``convert``."""
        i = cursor.next_i
        while True:
            if cursor.pending is None and not cursor.eof:
                cursor.pending = next(cursor.frames, None)
                if cursor.pending is None:
                    cursor.eof = True
                    self._check_complete(cursor)
                else:
                    cursor.time = cursor.pending[0]
                    cursor.decoded += 1
            if cursor.pending is None:
                break  # the end: the last frame lasts to the end of the video
            t, frame = cursor.pending
            if cursor.held is not None and i / self.fps < t - self._tol:
                break  # output i comes before this frame: it shows the held one
            cursor.held, cursor.held_t, cursor.held_rgb = frame, t, None
            cursor.pending = None
        cursor.next_i += 1
        if not convert:
            return None
        if cursor.held_rgb is None:
            assert cursor.held is not None
            cursor.held_rgb = _frame_rgb(cursor.held, self.info.rotation)
        return cursor.held_rgb

    def _check_complete(self, cursor: _Cursor) -> None:
        """At the end of the file: as :func:`iter_frames`, fail if frames went missing."""
        n = self.info.n_frames
        if cursor.from_start and cursor.decoded < n - max(2, 0.05 * n):
            raise InputError(
                f"only {cursor.decoded} of {n} video frames could be decoded; "
                f"the last one at t={cursor.held_t:.3f}s (corrupt or truncated file?)",
                path=self._path,
            )

    # -- lists of keyframes

    def _keyframe_pts(self) -> tuple[list[int], bool]:
        """Timestamps of the video stream's keyframe packets (read, not decoded), and
        whether the container is one that seeks reliably."""
        keys: list[int] = []
        with _open_input(self._path) as container:
            seekable = bool(set(container.format.name.split(",")) & _SEEKABLE_FORMATS)
            stream = _video_stream(container)
            if stream is None:  # pragma: no cover - probe checked; the file changed since
                raise InputError("no video stream", path=self._path)
            try:
                for packet in container.demux(stream):
                    if packet.size and packet.is_keyframe and packet.pts is not None:
                        keys.append(int(packet.pts))
            except av.error.FFmpegError:
                pass  # corrupt data is reported when the frames are decoded
        return keys, seekable


# --------------------------------------------------------------------------- writing


def _as_rate(fps: float | Fraction) -> Fraction:
    if isinstance(fps, Fraction):
        rate = fps
    else:
        if not math.isfinite(fps):
            raise ValueError(f"fps must be finite, got {fps}")
        rate = Fraction(fps).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return rate


def _prepare_audio(audio: np.ndarray) -> np.ndarray:
    """Audio as a contiguous float32 (S,) array in [-1, 1]."""
    a = np.asarray(audio)
    if a.ndim == 2 and 1 in a.shape:
        a = a.reshape(-1)
    if a.ndim != 1:
        raise ValueError(f"audio must be mono with shape (S,), got shape {a.shape}")
    if a.dtype == np.int16:
        a = a.astype(np.float32) / 32768.0
    elif not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"audio must be float (or int16) samples, got {a.dtype}")
    a = np.nan_to_num(a.astype(np.float32, copy=False), nan=0.0, posinf=1.0, neginf=-1.0)
    return np.ascontiguousarray(np.clip(a, -1.0, 1.0))


def _is_chunk_stream(audio: object) -> bool:
    """Whether ``audio`` is an iterable of chunks rather than one array of samples."""
    if isinstance(audio, np.ndarray) or hasattr(audio, "__array__"):
        return False
    if isinstance(audio, (list, tuple)):
        return any(np.ndim(x) > 0 for x in audio)
    return isinstance(audio, Iterable)


class _AudioSource:
    """Mono samples for :func:`write_video`: an array, or chunks pulled on demand.

    Chunks go through :func:`_prepare_audio` one by one (the same per-sample conversion
    as for an array); at most one chunk beyond the samples asked for is held.
    """

    def __init__(self, audio: np.ndarray | Iterable[np.ndarray]) -> None:
        self._array: np.ndarray | None = None
        self._chunks: Iterator | None = None
        self._pending: list[np.ndarray] = []  # pulled chunks not yet taken, in order
        self._have = 0  # samples in _pending
        self._pos = 0  # samples of _array taken
        if _is_chunk_stream(audio):
            self._chunks = iter(audio)
        else:
            self._array = _prepare_audio(audio)

    def _pull(self) -> bool:
        """Append the next non-empty chunk to ``_pending``; ``False`` at the end."""
        while self._chunks is not None:
            chunk = next(self._chunks, None)
            if chunk is None:
                self._chunks = None
                break
            chunk = _prepare_audio(chunk)
            if chunk.size:
                self._pending.append(chunk)
                self._have += chunk.size
                return True
        return False

    def take(self, n: int) -> np.ndarray:
        """The next ``n`` samples as a (<= n,) float32 array (fewer at the end)."""
        if self._array is not None:
            piece = self._array[self._pos : self._pos + n]
            self._pos += piece.size
            return piece
        while self._have < n and self._pull():
            pass
        if not self._pending:
            return np.zeros(0, np.float32)
        joined = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        piece, rest = joined[:n], joined[n:]
        self._pending = [rest] if rest.size else []
        self._have = rest.size
        return piece

    def rest(self) -> Iterator[np.ndarray]:
        """All the samples not yet taken, in pieces (one for an array)."""
        if self._array is not None:
            yield self.take(self._array.size - self._pos)
            return
        while self._pending or self._pull():
            pieces, self._pending, self._have = self._pending, [], 0
            yield from pieces


def _even_frame(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pad a frame by repeating its last row/column up to (height, width)."""
    h, w = frame.shape[:2]
    if (h, w) == (height, width):
        return frame
    return np.pad(frame, ((0, height - h), (0, width - w), (0, 0)), mode="edge")


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    fps: float | Fraction,
    *,
    audio: np.ndarray | Iterable[np.ndarray] | None = None,
    sample_rate: int = 16000,
    codec: str = "libx264",
    crf: int = 18,
    pix_fmt: str = "yuv420p",
) -> Path:
    """Encode RGB frames (and mono audio) to a video file, atomically.

    The frames are encoded at a constant rate (frame ``i`` at ``i / fps`` seconds); the
    audio is encoded as AAC and keeps its exact length (the MP4 edit list trims the
    encoder's padding; :func:`nvp.io.load_audio` returns exactly ``len(audio)`` samples).
    Frames with an odd width or height are padded by one repeated column/row at the
    right/bottom edge, since 4:2:0 chroma needs even sizes.

    The audio is interleaved with the frames by time: after frame ``i`` the samples up to
    its end, ``ceil((i + 1) * sample_rate / fps)``, are encoded. Audio given as an
    iterable of chunks is pulled only as far as that, so a track of any length can be
    muxed without holding it in memory (e.g. ``audio=iter_audio(src)``). If the chunks
    run out before the frames, the audio track is simply shorter; audio that goes on
    after the last frame is written too, as for an array. Both forms give the same file.

    Args:
        path: output file; the suffix selects the container (``.mp4`` recommended).
            Missing parent folders are created.
        frames: (H, W, 3) uint8 RGB arrays, all the same size; consumed lazily.
        fps: frame rate (float or :class:`fractions.Fraction`, e.g. ``Fraction(30000, 1001)``).
        audio: optional mono float32 samples in [-1, 1] (int16 is accepted too): an
            (S,) array, or an iterable of such arrays (chunks of any lengths, a
            generator or a list of arrays), consumed lazily.
        sample_rate: sample rate of ``audio`` in Hz.
        codec: FFmpeg video encoder.
        crf: constant rate factor for libx264/libx265 (0 = lossless, 18 = visually
            lossless, 23 = FFmpeg's default).
        pix_fmt: pixel format of the encoded video.

    Returns:
        The path written.

    Raises:
        ValueError: no frames, frames of different sizes or types, or bad audio (for
            chunks, raised when the bad chunk is reached; no file is left behind).
    """
    final = Path(path)
    rate = _as_rate(fps)
    samples = _AudioSource(audio) if audio is not None else None
    if samples is not None and sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    fmt = _FORMATS.get(final.suffix.lower())
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise ValueError("write_video needs at least one frame")
    first = np.asarray(first)
    if first.ndim != 3 or first.shape[2] != 3 or first.dtype != np.uint8:
        raise ValueError(
            f"frames must be (H, W, 3) uint8 RGB arrays, got {first.shape} {first.dtype}"
        )
    h, w = first.shape[:2]
    subsampled = pix_fmt.startswith(("yuv420", "yuvj420", "nv12", "yuv422"))
    out_h = h + (h % 2 if pix_fmt.startswith(("yuv420", "yuvj420", "nv12")) else 0)
    out_w = w + (w % 2 if subsampled else 0)

    with _temp_output(final) as tmp, av.open(str(tmp), mode="w", format=fmt) as container:
        vstream = container.add_stream(codec, rate=rate)
        vstream.width, vstream.height, vstream.pix_fmt = out_w, out_h, pix_fmt
        vstream.codec_context.time_base = 1 / rate
        if codec in ("libx264", "libx265"):
            vstream.options = {"crf": str(int(crf))}
        astream = None
        if samples is not None:
            astream = container.add_stream("aac", rate=int(sample_rate), layout="mono")
        per_frame = int(sample_rate) / rate if samples is not None else None
        written = 0  # audio samples sent to the encoder so far

        def encode_audio(piece: np.ndarray) -> None:
            nonlocal written
            chunk = av.AudioFrame.from_ndarray(piece[None], format="flt", layout="mono")
            chunk.sample_rate = int(sample_rate)
            chunk.pts = written
            chunk.time_base = Fraction(1, int(sample_rate))
            for packet in astream.encode(chunk):
                container.mux(packet)
            written += piece.size

        def send_audio(upto: int) -> None:
            if astream is None or samples is None or upto <= written:
                return
            piece = samples.take(upto - written)
            if piece.size:
                encode_audio(piece)

        index = 0
        frame = first
        while frame is not None:
            frame = np.asarray(frame)
            if frame.shape != first.shape or frame.dtype != np.uint8:
                raise ValueError(
                    f"frame {index} is {frame.shape} {frame.dtype}, "
                    f"expected {first.shape} uint8 like the first frame"
                )
            vf = av.VideoFrame.from_ndarray(_even_frame(frame, out_h, out_w), format="rgb24")
            vf.pts = index
            vf.time_base = 1 / rate
            for packet in vstream.encode(vf):
                container.mux(packet)
            index += 1
            if per_frame is not None:
                # Interleave: audio up to the end of this frame.
                send_audio(math.ceil(index * per_frame))
            frame = next(it, None)
        for packet in vstream.encode():
            container.mux(packet)
        if astream is not None:
            for piece in samples.rest():
                if piece.size:
                    encode_audio(piece)
            for packet in astream.encode():
                container.mux(packet)
    return final
