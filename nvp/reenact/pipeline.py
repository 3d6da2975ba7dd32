"""``nvp reenact``: driving audio -> an mp4 of the target person speaking it.

Stages (each timed, see :class:`ReenactResult`):

1. **check**: the audio is decoded once in chunks to count its samples and run the voice
   activity detector (silence or no speech is refused with a clear error);
2. **features**: chunks of audio (with a margin of context on both sides) -> the A2E
   checkpoint's audio features, windowed per video frame at the target's fps;
3. **a2e**: Audio2ExpressionNet (per-frame net + temporal filter) -> 32-d
   audio-expressions -> the target's map -> K expression coefficients (optionally smoothed
   over time);
4. **raster**: mesh ``identity + basis @ expression`` at the reused target frame's rigid
   pose -> UV map and face mask at the store's size;
5. **render**: neural texture + renderer (+ blending network over the target frame);
6. **compose**: crop output, or pasted back into the full original frame; side by side;
7. **encode**: H.264 mp4 with the driving audio muxed in.

Memory is bounded: the audio is streamed in chunks (``chunk_seconds``), frames are rendered
in batches and encoded as they come, and full source frames are read through a block
cache. The output has ``round(duration * fps)`` frames: its length matches the audio's to
within half a frame.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from omegaconf import DictConfig
from scipy.ndimage import gaussian_filter1d
from tqdm import tqdm

from nvp.audio.config import AudioFeatureConfig
from nvp.audio.features import feature_signature
from nvp.audio.windows import extract_windows
from nvp.data.crop import crop_matrix
from nvp.data.store import SequenceStore
from nvp.errors import InputError
from nvp.reenact.config import ReenactConfig
from nvp.reenact.target import Target
from nvp.tracking.fit import apply_pose
from nvp.tracking.landmarks import FACE_MISSING

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
#: Peak amplitude below which a file counts as silent (-80 dBFS).
SILENCE_PEAK = 1e-4


class Timer:
    """Seconds spent per named stage (``with timer("render"): ...``)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - t0


# ------------------------------------------------------------------------------ target frames


def target_frames(store: SequenceStore, which: str = "all") -> np.ndarray:
    """Frame indices of the target that may be reused: those of ``which`` (a split, ``all``,
    or ``heldout`` = val and test, consecutive in time) with a face (detected or
    interpolated)."""
    if which == "all":
        a, b = 0, store.n_frames
    elif which == "heldout":
        a, b = store.split_range("val")[0], store.split_range("test")[1]
    else:
        a, b = store.split_range(which)
    flags = np.asarray(store["face_flag"][a:b])
    idx = np.arange(a, b)[flags != FACE_MISSING]
    if len(idx) == 0:
        raise InputError(f"no frames with a face in {which!r}", path=store.path)
    return idx


def pingpong(i: np.ndarray, n: int) -> np.ndarray:
    """Positions ``0, 1, .., n-1, n-2, .., 1, 0, 1, ..`` of output frames ``i`` (looping back
    and forth over ``n`` frames, no frame shown twice at the turns)."""
    i = np.asarray(i, np.int64)
    if n <= 1:
        return np.zeros_like(i)
    k = i % (2 * n - 2)
    return np.where(k < n, k, 2 * n - 2 - k)


def audio_config(store: SequenceStore) -> AudioFeatureConfig:
    """The audio feature settings the store was preprocessed with (and that its A2E checkpoint
    was trained on), checked against the store's feature signature."""
    settings = (store.attrs.get("settings") or {}).get("audio")
    if not settings:
        raise InputError("the store records no audio feature settings", path=store.path)
    if settings.get("precomputed"):
        raise InputError(
            "the target's features were precomputed DeepSpeech windows; new audio needs an "
            "extractor (audio.name=deepspeech with its graph, or another extractor)",
            path=store.path,
        )
    cfg = AudioFeatureConfig(**settings)
    sig = feature_signature(cfg)
    if sig != store.attrs.get("features"):
        raise InputError(
            "the audio extractor available here differs from the one the store was built with "
            "(e.g. other model weights); the features would not match the A2E checkpoint",
            path=store.path,
        )
    return cfg


# ------------------------------------------------------------------------------- audio checks


@dataclass
class AudioCheck:
    """What the pre-pass found in the driving audio."""

    n_samples: int
    """Samples at 16 kHz."""
    peak: float
    speech_s: float
    sample_rate: int
    """The file's own sample rate (used for the muxed audio track)."""

    @property
    def duration_s(self) -> float:
        return self.n_samples / SAMPLE_RATE


def check_audio(path: str | Path, min_speech_s: float, chunk_seconds: float = 30.0) -> AudioCheck:
    """Stream the audio once: length, peak level and seconds of speech (Silero VAD).

    Raises:
        InputError: unreadable / unsupported file, no audio track, silence, or less speech
            than ``min_speech_s``.
    """
    from nvp.audio.vad import speech_seconds_stream
    from nvp.io.audio import audio_info, iter_audio

    info = audio_info(path)
    n = 0
    peak = 0.0

    def counted() -> Iterator[np.ndarray]:
        nonlocal n, peak
        for c in iter_audio(path, SAMPLE_RATE, chunk_seconds):
            n += c.size
            if c.size:
                peak = max(peak, float(np.abs(c).max()))
            yield c

    speech = speech_seconds_stream(counted()) if min_speech_s > 0 else None
    if speech is None:
        for _ in counted():
            pass
    if peak < SILENCE_PEAK:
        raise InputError(f"the audio is silent (peak level {peak:.2e})", path=path)
    if speech is not None and speech < min_speech_s:
        raise InputError(
            f"no speech detected (the voice activity detector found {speech:.2f} s of speech "
            f"in {n / SAMPLE_RATE:.1f} s; min_speech_seconds={min_speech_s:g})",
            path=path,
        )
    return AudioCheck(n, peak, speech or 0.0, int(info.sample_rate))


# --------------------------------------------------------------------------------- expressions


def smooth_expressions(expr: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of (N, K) expressions over time, sigma in frames (0 = unchanged)."""
    if sigma <= 0:
        return expr
    return gaussian_filter1d(expr, sigma, axis=0, mode="nearest")


def _context_frames(target: Target, smooth_sigma: float, window: int) -> int:
    net = target.a2e.cfg.net
    return int(net.seq_len + window + math.ceil(4 * smooth_sigma) + 8)


def stream_expressions(
    target: Target,
    chunks: Iterator[np.ndarray],
    n_frames: int,
    cfg: ReenactConfig,
    timer: Timer | None = None,
    audio_cfg: AudioFeatureConfig | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Expressions of output frames, chunk by chunk, from streamed 16 kHz audio.

    Every chunk of ``cfg.chunk_seconds`` is processed with a margin of context frames on
    both sides (the feature windows, the temporal filter's 8 frames and the smoothing
    kernel), so the result equals processing the whole file at once (exactly for the
    mel/MFCC extractors, whose rows depend only on their own 25 ms; Whisper encodes 30-s
    windows of its own and differs slightly at chunk boundaries).

    Args:
        target: the loaded target.
        chunks: the driving audio as mono float32 chunks at 16 kHz (any lengths).
        n_frames: output frames N.
        cfg: reenactment settings (``chunk_seconds``, ``smooth_sigma``).

    Yields:
        ``(f0, expressions)``: the first output frame of the chunk and (n, K) float32.
    """
    timer = timer or Timer()
    acfg = audio_cfg or audio_config(target.store)
    fps = target.fps
    spf = SAMPLE_RATE / fps
    step = max(1, round(cfg.chunk_seconds * fps))
    margin = _context_frames(target, cfg.smooth_sigma, acfg.window)
    buf = np.zeros(0, np.float32)
    buf_start = 0  # sample index of buf[0]
    exhausted = False
    it = iter(chunks)
    for f0 in range(0, n_frames, step):
        f1 = min(n_frames, f0 + step)
        fs, fe = max(0, f0 - margin), min(n_frames, f1 + margin)
        s0, s1 = round(fs * spf), round(fe * spf)
        while not exhausted and buf_start + buf.size < s1:
            nxt = next(it, None)
            if nxt is None:
                exhausted = True
            else:
                buf = np.concatenate([buf, np.asarray(nxt, np.float32)])
        seg = buf[max(0, s0 - buf_start) : max(0, s1 - buf_start)]
        with timer("features"):
            windows = extract_windows(seg, SAMPLE_RATE, fe - fs, fps, acfg)
        with timer("a2e"):
            expr = target.expressions(windows)
            expr = smooth_expressions(expr, cfg.smooth_sigma)
        yield f0, expr[f0 - fs : f1 - fs].astype(np.float32)
        keep_from = round(max(0, f1 - margin) * spf)  # the next segment's first sample
        if keep_from > buf_start:
            buf = buf[keep_from - buf_start :]
            buf_start = keep_from


# ----------------------------------------------------------------------------------- rendering


class FrameRenderer:
    """Meshes at the target's poses -> UV / mask -> neural renderer, in batches."""

    def __init__(self, target: Target) -> None:
        self.t = target
        st = target.store
        fm = target.face_model
        dev = target.device
        self.identity = np.asarray(st["identity"][...], np.float32)
        self.tracked = np.asarray(st["expression"][...], np.float32)
        self.pose = np.asarray(st["pose"][...], np.float32)
        self.faces = torch.as_tensor(fm.triangles, dtype=torch.int64, device=dev)
        self.uvs = torch.as_tensor(fm.uv, device=dev)
        self.labels = torch.as_tensor(fm.triangle_labels, device=dev)
        self.mouth_w = fm.mouth_weight.astype(np.float32)[:, None]
        self.size = st.size

    def raster(
        self, tidx: np.ndarray, expr: np.ndarray | None, mouth_only: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """UV maps (B, S, S, 2) and label masks (B, S, S) of target frames ``tidx`` with
        expressions ``expr`` (B, K) (None = the tracked ones)."""
        from nvp.raster import render_uv_mask

        fm = self.t.face_model
        tracked = self.tracked[tidx]
        shape = fm.expression_vertices(self.identity, tracked if expr is None else expr)
        if mouth_only and expr is not None:
            shape = self.mouth_w * shape + (1 - self.mouth_w) * fm.expression_vertices(
                self.identity, tracked
            )
        verts = torch.as_tensor(apply_pose(shape, self.pose[tidx]), device=self.t.device)
        uv, mask = render_uv_mask(verts, self.faces, self.uvs, self.labels, (self.size,) * 2)
        return uv.half().float(), mask  # as stored (float16), as the renderer was trained

    def frames(self, tidx: np.ndarray) -> np.ndarray:
        """The target's crops (B, S, S, 3) uint8."""
        arr = self.t.store["frames"]
        return np.stack([np.asarray(arr[int(i)]) for i in tidx])

    @torch.inference_mode()
    def render(
        self,
        uv: torch.Tensor,
        mask: torch.Tensor,
        frames: np.ndarray,
        expression: np.ndarray | None = None,
    ) -> np.ndarray:
        """Renderer output (B, S, S, 3) uint8 over the target crops ``frames``.

        ``expression`` (B, K): the expressions the UV maps were rastered with, needed by a
        renderer with a dynamic (expression-conditioned) texture."""
        dev = self.t.device
        image = torch.as_tensor(frames, device=dev).permute(0, 3, 1, 2).float() / 127.5 - 1
        face = (mask > 0).float()[:, None].to(dev)
        e = None if expression is None else torch.as_tensor(expression, device=dev).float()
        out = self.t.renderer(uv.to(dev), image, face, e)["final"]
        rgb = ((out.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        return rgb.permute(0, 2, 3, 1).cpu().numpy()


def paste(
    frame: np.ndarray,
    crop: np.ndarray,
    face: np.ndarray,
    square: np.ndarray,
    dilate: int,
    feather: float,
) -> np.ndarray:
    """Paste a rendered crop back into the full frame through the crop square.

    Args:
        frame: (H, W, 3) uint8 original frame.
        crop: (S, S, 3) uint8 rendered crop.
        face: (S, S) bool face region of the crop; the pasted region is this, dilated by
            ``dilate`` px and feathered with a Gaussian of ``feather`` px (crop pixels).
        square: ``[x0, y0, side]`` of the crop in source pixels.

    Returns:
        (H, W, 3) uint8.
    """
    h, w = frame.shape[:2]
    s = crop.shape[0]
    m = crop_matrix(square, s)
    alpha = face.astype(np.float32)
    if dilate > 0:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate + 1,) * 2)
        alpha = cv2.dilate(alpha, k)
    if feather > 0:
        alpha = cv2.GaussianBlur(alpha, (0, 0), feather)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    big = cv2.warpAffine(crop, m, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    a = cv2.warpAffine(alpha, m, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT)[..., None]
    out = frame.astype(np.float32) * (1 - a) + big.astype(np.float32) * a
    return out.round().clip(0, 255).astype(np.uint8)


def source_reader(store: SequenceStore):
    """Random access to the full source frames of a store at its fps (for full-frame output)."""
    from nvp.io.video import FrameReader

    src = store.attrs.get("source", {})
    p = Path(src.get("path", ""))
    if not p.is_file():
        raise InputError(
            f"full-frame output needs the target's source video, which is missing ({p}); "
            "use output=crop",
            path=store.path,
        )
    if src.get("bytes") and p.stat().st_size != src["bytes"]:
        raise InputError(
            "the target's source video changed since preprocessing; use output=crop", path=p
        )
    return FrameReader(p, store.fps)


# ----------------------------------------------------------------------------------- the job


@dataclass
class ReenactResult:
    """What :func:`reenact` wrote and how long each stage took."""

    out: Path
    n_frames: int
    fps: float
    duration_s: float
    speech_s: float
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall seconds per stage: check, features, a2e, raster, render, compose, encode, total."""
    upscale: float | None = None
    """``--output full``: how much the rendered face is scaled up to its size in the source
    (median crop side / store size; None for crop output)."""

    @property
    def frames_per_s(self) -> float:
        return self.n_frames / max(self.seconds.get("total", 0.0), 1e-9)

    def table(self) -> str:
        """Per-stage ms/frame and share of the time."""
        tot = self.seconds.get("total", 0.0)
        rows = [f"{'stage':<9} {'s':>8} {'ms/frame':>9} {'share':>6}"]
        for k in ("check", "features", "a2e", "raster", "render", "compose", "encode"):
            s = self.seconds.get(k, 0.0)
            rows.append(
                f"{k:<9} {s:8.2f} {1000 * s / max(1, self.n_frames):9.1f} "
                f"{100 * s / max(tot, 1e-9):5.1f}%"
            )
        rows.append(f"{'total':<9} {tot:8.2f} {1000 * tot / max(1, self.n_frames):9.1f}")
        return "\n".join(rows)


#: ``--output full`` warns when the face is scaled up more than this into the source frame.
UPSCALE_WARNING = 1.25


def face_upscale(store: SequenceStore, frames: np.ndarray) -> tuple[float, int]:
    """How much ``--output full`` scales the rendered face up to paste it into the source.

    Args:
        store: the target's store (its ``crop`` squares are in source pixels).
        frames: the target frames that are reused.

    Returns:
        ``(factor, side)``: the median crop side over ``frames`` divided by the store's size,
        and that median side rounded up to a multiple of 16 (a ``crop.size`` that renders
        the face at its size in the source).
    """
    side = float(np.median(np.asarray(store["crop"][...], np.float32)[frames, 2]))
    return side / store.size, int(-(-side // 16) * 16)


def reenact(
    target: Target, audio: str | Path, out: str | Path, cfg: ReenactConfig
) -> ReenactResult:
    """Render ``target`` speaking ``audio`` into the mp4 ``out`` (see the module docstring).

    Raises:
        InputError: an output path whose format is unknown (suffix) or whose folder cannot be
            written, unreadable audio, silence / no speech, audio shorter than one feature
            window, a missing source video for full-frame output. Nothing is left at
            ``out`` unless the whole video was written; an interrupted run starts again from
            the beginning when rerun (its partial file is removed then).
    """
    from nvp.io.audio import iter_audio
    from nvp.io.files import check_output_file
    from nvp.io.video import OUTPUT_SUFFIXES

    check_output_file(out, OUTPUT_SUFFIXES, "video")
    t_start = time.perf_counter()
    timer = Timer()
    with timer("check"):
        chk = check_audio(audio, cfg.min_speech_seconds, cfg.chunk_seconds)
        acfg = audio_config(target.store)
    fps = target.fps
    n = max(1, round(chk.n_samples / SAMPLE_RATE * fps))
    span = acfg.window / fps if acfg.stride == "video" else acfg.window / 50.0
    if chk.duration_s < span:
        raise InputError(
            f"the audio is too short: {chk.duration_s:.2f} s, less than one {span:.2f}-s "
            "feature window",
            path=audio,
        )
    chunks = iter_audio(audio, SAMPLE_RATE, cfg.chunk_seconds)
    expressions = stream_expressions(target, chunks, n, cfg, timer, acfg)
    muxed = iter_audio(audio, chk.sample_rate, cfg.chunk_seconds)
    path, upscale = _write_reenactment(
        target, expressions, n, out, cfg, timer, muxed, chk.sample_rate
    )
    secs = dict(timer.seconds)
    secs["total"] = time.perf_counter() - t_start
    return ReenactResult(Path(path), n, fps, chk.duration_s, chk.speech_s, secs, upscale)


def reenact_features(
    target: Target,
    windows: np.ndarray,
    out: str | Path,
    cfg: ReenactConfig,
    audio: np.ndarray | None = None,
    sample_rate: int = SAMPLE_RATE,
) -> ReenactResult:
    """Render ``target`` driven by per-frame audio feature windows computed elsewhere (the
    frame path of :func:`reenact` without its audio front end: no VAD, no feature
    extraction): windows -> A2E -> map -> (smoothing) -> :func:`render_frames` -> video.

    Args:
        target: a loaded target.
        windows: (N, W, D) feature windows with the target's feature settings (e.g. a
            store's ``audio_features``), one per output frame.
        out: the video file.
        cfg: reenactment settings (``output``, ``batch``, ``side_by_side``, ``smooth_sigma``).
        audio: mono samples to mux (optional).
        sample_rate: of ``audio``, Hz.
    """
    from nvp.io.files import check_output_file
    from nvp.io.video import OUTPUT_SUFFIXES

    check_output_file(out, OUTPUT_SUFFIXES, "video")
    t_start = time.perf_counter()
    timer = Timer()
    n = len(windows)
    with timer("a2e"):
        expr = smooth_expressions(target.expressions(np.asarray(windows)), cfg.smooth_sigma)
    path, upscale = _write_reenactment(target, [(0, expr)], n, out, cfg, timer, audio, sample_rate)
    secs = dict(timer.seconds)
    secs["total"] = time.perf_counter() - t_start
    dur = n / target.fps
    return ReenactResult(Path(path), n, target.fps, dur, dur, secs, upscale)


def _write_reenactment(
    target: Target,
    expressions: Iterable[tuple[int, np.ndarray]],
    n: int,
    out: str | Path,
    cfg: ReenactConfig,
    timer: Timer,
    audio: np.ndarray | Iterable[np.ndarray] | None,
    sample_rate: int,
) -> tuple[Path, float | None]:
    """Render ``n`` frames from the expression chunks and encode them with ``audio`` into
    ``out`` (the part :func:`reenact` and :func:`reenact_features` share). The encoder's own
    time goes to ``timer`` as ``encode``. Returns the path and, for full-frame output, the
    face's upscale factor (warned about above :data:`UPSCALE_WARNING`)."""
    from nvp.io.video import write_video

    frames_idx = target_frames(target.store, cfg.frames)
    reader = source_reader(target.store) if cfg.output == "full" else None  # fails early
    crops = np.asarray(target.store["crop"][...], np.float32) if reader is not None else None
    upscale = None
    if reader is not None:
        upscale, side = face_upscale(target.store, frames_idx)
        if upscale > UPSCALE_WARNING:
            log.warning(
                "--output full: the face is rendered at %d x %d px and scaled up %.1fx to its "
                "%d-px square in the source video, so it looks softer than the frame around "
                "it. For a face at the source's resolution, preprocess the clip with "
                "crop.size=%d and train the renderer on that store.",
                target.size,
                target.size,
                upscale,
                round(upscale * target.size),
                side,
            )
    fr = FrameRenderer(target)
    frames = render_frames(target, expressions, n, cfg, timer, frames_idx, fr, reader, crops)
    before = sum(timer.seconds.values())
    t0 = time.perf_counter()
    try:
        path = write_video(
            out, frames, target.fps, audio=audio, sample_rate=sample_rate, crf=cfg.crf
        )
    finally:
        if reader is not None:
            reader.close()
    inner = sum(timer.seconds.values()) - before  # features, A2E, raster, render, compose
    timer.seconds["encode"] += max(0.0, time.perf_counter() - t0 - inner)
    return Path(path), upscale


def render_frames(
    target: Target,
    expressions: Iterable[tuple[int, np.ndarray]],
    n: int,
    cfg: ReenactConfig,
    timer: Timer,
    frames_idx: np.ndarray,
    fr: FrameRenderer,
    reader=None,
    crops: np.ndarray | None = None,
) -> Iterator[np.ndarray]:
    """The output frames of a reenactment, in order: for each chunk ``(first frame, (F, K)
    expressions)`` of ``expressions``, ``cfg.batch`` frames at a time: mesh at the reused
    target frames' poses -> raster -> renderer (+ blending over the target frame) -> the crop,
    or pasted into the full source frame (``reader`` and ``crops`` given), side by side with
    the driving frame with ``cfg.side_by_side``. Times go to ``timer`` (raster, render,
    compose); ``n`` frames in all drive the progress bar.

    Yields:
        (H, W, 3) uint8 RGB frames.
    """
    band = int(target.renderer.cfg.data.band)
    feather = cfg.paste_feather * target.size
    bar = tqdm(total=n, desc=f"reenact {target.name}", unit="frame", dynamic_ncols=True)
    for f0, expr in expressions:
        for b0 in range(0, len(expr), cfg.batch):
            e = expr[b0 : b0 + cfg.batch]
            out_idx = np.arange(f0 + b0, f0 + b0 + len(e))
            tidx = frames_idx[pingpong(out_idx, len(frames_idx))]
            with timer("raster"):
                uv, mask = fr.raster(tidx, e, cfg.mouth_only)
            with timer("render"):
                src = fr.frames(tidx)
                rgb = fr.render(uv, mask, src, e)
            with timer("compose"):
                face = mask.cpu().numpy() > 0
                for j in range(len(e)):
                    img, left = rgb[j], src[j]
                    if reader is not None:
                        full = reader[int(tidx[j])]
                        img = paste(full, img, face[j], crops[tidx[j]], band + 2, feather)
                        left = full
                    if cfg.side_by_side:
                        img = np.concatenate([left, img], axis=1)
                    yield img
            bar.update(len(e))
    bar.close()


def reenact_target(
    cfg: Any, target: str | Path, audio: str | Path, out: str | Path
) -> tuple[ReenactResult, Target]:
    """The ``reenact`` stage: load and check a TARGET folder, then :func:`reenact`.

    Args:
        cfg: a resolved :class:`ReenactConfig` (``DictConfig`` or the dataclass).
        target: the TARGET folder.
        audio: the driving audio (any format FFmpeg reads).
        out: the video file to write (``.mp4``, ``.mov``, ``.mkv``).

    Returns:
        The result (frames, timings, upscale) and the loaded target.
    """
    from nvp.config import to_object
    from nvp.io.files import check_output_file
    from nvp.io.video import OUTPUT_SUFFIXES
    from nvp.reenact.target import load_target

    obj = to_object(cfg) if isinstance(cfg, DictConfig) else cfg
    check_output_file(out, OUTPUT_SUFFIXES, "video")
    tgt = load_target(target, device=obj.device)
    return reenact(tgt, audio, out, obj), tgt
