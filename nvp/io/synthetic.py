"""Synthetic clips: a talking head that needs no user data, and clips for tests.

:func:`make_talking_head` animates the public-domain portrait of Grace Hopper that ships
with matplotlib (``grace_hopper.jpg``, 512x600): MediaPipe Face Mesh locates the mouth
once, then every frame warps the lower lip and jaw down by a syllable-like mouth-opening
signal, paints the mouth interior, adds a slight smooth head motion and crops a square
around the face. The audio is a voiced, speech-like sound (glottal pulses through vowel
formants) whose loudness follows the same opening signal, so mouth opening and audio
energy are correlated as in real speech. It stands in for a real recording in tests,
examples and the demo.

The other builders make fixtures: :func:`make_noise_video` (no face),
:func:`make_silent_video` (no audio track), :func:`make_counter_video` (flat grey frames
that encode their index, at a constant or a variable frame rate) and
:func:`make_corrupt_file` (a damaged copy of a file).
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from scipy.signal import lfilter

from nvp.io.video import _temp_output, write_video

__all__ = [
    "counter_level",
    "make_corrupt_file",
    "make_counter_video",
    "make_noise_video",
    "make_silent_video",
    "make_talking_head",
    "mouth_opening",
]

#: Face Mesh landmark indices used here.
_POINTS = {
    "upper_lip": 13,
    "lower_lip": 14,
    "mouth_left": 61,
    "mouth_right": 291,
    "chin": 152,
    "eye_left": 33,
    "eye_right": 263,
}

#: Where Face Mesh (mediapipe 0.10, static mode) finds those landmarks on the photo, in
#: pixels; used only when mediapipe cannot be imported.
_FALLBACK_POINTS = {
    "upper_lip": (268.70, 276.88),
    "lower_lip": (268.59, 277.20),
    "mouth_left": (232.28, 277.26),
    "mouth_right": (304.66, 273.92),
    "chin": (271.62, 333.06),
    "eye_left": (201.61, 194.23),
    "eye_right": (326.37, 187.28),
}

#: Formant frequencies (Hz) of a few vowels (a, e, i, o, u) and their bandwidths.
_VOWELS = np.array(
    [[730, 1090, 2440], [530, 1840, 2480], [390, 1990, 2550], [570, 840, 2410], [440, 1020, 2240]],
    dtype=np.float64,
)
_BANDWIDTHS = (90.0, 110.0, 170.0)

#: Colour of the mouth interior (RGB).
_MOUTH_COLOUR = np.array([52.0, 18.0, 22.0], dtype=np.float32)


# --------------------------------------------------------------------------- the still


@functools.lru_cache(maxsize=1)
def _still() -> tuple[np.ndarray, dict[str, tuple[float, float]]]:
    """The portrait as (H, W, 3) uint8 RGB (read-only) and its mouth/eye/chin points."""
    from matplotlib import cbook

    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:  # pragma: no cover - broken matplotlib install
        raise FileNotFoundError(f"cannot read the sample photo {path}")
    image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    image.flags.writeable = False
    return image, _face_points(image)


def _face_points(image: np.ndarray) -> dict[str, tuple[float, float]]:
    """Run MediaPipe Face Mesh once on the still; fixed points if mediapipe is absent."""
    try:
        import mediapipe

        face_mesh = mediapipe.solutions.face_mesh
    except (ImportError, AttributeError):
        warnings.warn(
            "mediapipe is not installed; using stored landmark positions of the sample photo",
            stacklevel=3,
        )
        return dict(_FALLBACK_POINTS)
    h, w = image.shape[:2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # protobuf API notices
        with face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=False) as mesh:
            result = mesh.process(np.ascontiguousarray(image))
    if not result.multi_face_landmarks:  # pragma: no cover - would be a mediapipe regression
        return dict(_FALLBACK_POINTS)
    lm = result.multi_face_landmarks[0].landmark
    return {name: (lm[i].x * w, lm[i].y * h) for name, i in _POINTS.items()}


# --------------------------------------------------------------------------- signals


def _syllables(seconds: float, seed: int) -> np.ndarray:
    """Syllables as rows (start s, duration s, peak opening): about 4 per second, pauses."""
    rng = np.random.default_rng([seed, 0])
    rows = []
    t = 0.12 + rng.uniform(0.0, 0.1)
    while t < seconds:
        if rows and rng.random() < 0.15:
            t += rng.uniform(0.25, 0.5)  # a pause between words
            continue
        duration = rng.uniform(0.14, 0.24)
        rows.append((t, duration, rng.uniform(0.45, 1.0)))
        t += duration + rng.uniform(0.0, 0.04)
    return np.asarray(rows, dtype=np.float64).reshape(-1, 3)


def mouth_opening(times: np.ndarray, *, seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    """The mouth-opening signal o(t) in [0, 1] of :func:`make_talking_head` at ``times``.

    Each syllable opens and closes the mouth as a raised half-sine; the signal is 0 in
    pauses. ``seconds`` and ``seed`` must be those the clip was made with.
    """
    t = np.asarray(times, dtype=np.float64)
    out = np.zeros_like(t)
    for start, duration, peak in _syllables(seconds, seed):
        phase = (t - start) / duration
        inside = (phase > 0) & (phase < 1)
        if inside.any():
            bump = peak * np.sin(np.pi * phase[inside]) ** 1.2
            out[inside] = np.maximum(out[inside], bump)
    return out


def _resonator(x: np.ndarray, freq: np.ndarray | float, bandwidth: float, rate: int) -> np.ndarray:
    r = math.exp(-math.pi * bandwidth / rate)
    theta = 2.0 * math.pi * float(freq) / rate
    a = [1.0, -2.0 * r * math.cos(theta), r * r]
    return lfilter([1.0 - r], a, x)


def speech_audio(seconds: float, sample_rate: int, seed: int) -> np.ndarray:
    """Voiced speech-like audio whose amplitude envelope is the mouth opening."""
    n = round(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    envelope = mouth_opening(t, seconds=seconds, seed=seed)
    rng = np.random.default_rng([seed, 1])

    # Glottal source: a pulse train at 110-160 Hz with slow pitch drift.
    base = rng.uniform(120.0, 145.0)
    drift = 12.0 * np.sin(2 * np.pi * 0.35 * t + rng.uniform(0, 2 * np.pi))
    drift += 5.0 * np.sin(2 * np.pi * 1.3 * t + rng.uniform(0, 2 * np.pi))
    f0 = np.clip(base + drift, 110.0, 160.0)
    phase = np.cumsum(f0 / sample_rate)
    pulses = np.diff(np.floor(phase), prepend=0.0)
    a = math.exp(-2 * math.pi * 800.0 / sample_rate)  # glottal pulse shape: two low-passes
    source = lfilter([1 - a], [1, -a], lfilter([1 - a], [1, -a], pulses))
    source = np.diff(source, prepend=0.0)  # lip radiation

    # One vowel per syllable, cross-faded over 30 ms.
    syllables = _syllables(seconds, seed)
    vowel_of = rng.integers(0, len(_VOWELS), size=max(len(syllables), 1))
    centres = syllables[:, 0] + syllables[:, 1] / 2 if len(syllables) else np.zeros(1)
    nearest = np.abs(t[:, None] - centres[None, :]).argmin(axis=1)
    weights = np.zeros((len(_VOWELS), n))
    weights[vowel_of[nearest], np.arange(n)] = 1.0
    kernel = np.hanning(max(3, int(0.03 * sample_rate)))
    kernel /= kernel.sum()
    voice = np.zeros(n)
    for k, formants in enumerate(_VOWELS):
        if not weights[k].any():
            continue
        y = source
        for freq, bw in zip(formants, _BANDWIDTHS):
            y = _resonator(y, freq, bw, sample_rate)
        y /= np.sqrt(np.mean(y**2)) + 1e-12  # same loudness for every vowel
        voice += np.convolve(weights[k], kernel, mode="same") * y

    breath = lfilter([1, -1], [1, -0.5], rng.standard_normal(n))  # high-passed noise
    audio = envelope * (voice + 0.08 * breath) + 0.004 * rng.standard_normal(n)
    return (0.7 * audio / (np.abs(audio).max() + 1e-12)).astype(np.float32)


# --------------------------------------------------------------------------- frames


def _head_motion(times: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smooth translation (x, y in units of a 256-pixel frame) and rotation (degrees)."""
    rng = np.random.default_rng([seed, 2])
    out = []
    for amplitude in (3.0, 2.0, 2.0):
        freqs = rng.uniform(0.15, 0.7, size=2)
        phases = rng.uniform(0, 2 * np.pi, size=2)
        wave_ = 0.65 * np.sin(2 * np.pi * freqs[0] * times + phases[0])
        wave_ += 0.35 * np.sin(2 * np.pi * freqs[1] * times + phases[1])
        out.append(amplitude * wave_)
    return out[0], out[1], out[2]


def _talking_frames(
    seconds: float,
    fps: float,
    size: int,
    seed: int,
    head_motion: bool,
    opening: np.ndarray | None = None,
) -> Iterator[np.ndarray]:
    image, pts = _still()
    (xl, yl), (xr, yr) = pts["mouth_left"], pts["mouth_right"]
    xc = (xl + xr) / 2
    y_lip = (pts["upper_lip"][1] + pts["lower_lip"][1]) / 2
    slope = (yr - yl) / (xr - xl)
    width = math.hypot(xr - xl, yr - yl)
    jaw_drop = 0.25 * width  # lower lip and jaw at full opening
    lip_lift = 0.05 * width  # upper lip at full opening
    chin_u = pts["chin"][1] - y_lip

    eyes_y = (pts["eye_left"][1] + pts["eye_right"][1]) / 2
    eyes_x = (pts["eye_left"][0] + pts["eye_right"][0]) / 2
    face_h = pts["chin"][1] - eyes_y
    centre = np.array([(eyes_x + pts["chin"][0]) / 2, eyes_y + 0.5 * face_h])
    scale = size / (2.4 * face_h)

    # Pre-filter the still against aliasing when shrinking it.
    sigma = 0.5 * (1.0 / scale - 1.0)
    source = cv2.GaussianBlur(image, (0, 0), sigma) if sigma > 0.2 else np.asarray(image)

    n_frames = max(1, math.floor(seconds * fps + 1e-6))
    times = np.arange(n_frames) / fps
    if opening is None:
        opening = mouth_opening(times, seconds=seconds, seed=seed)
    if head_motion:
        tx, ty, angle = _head_motion(times, seed)
        tx, ty = tx * size / 256, ty * size / 256
    else:
        tx = ty = angle = np.zeros(n_frames)

    grid_y, grid_x = np.mgrid[0:size, 0:size].astype(np.float64)
    for k in range(n_frames):
        # Output pixel -> position in the (mouth-warped) still: inverse similarity.
        rad = math.radians(angle[k])
        cos, sin = math.cos(rad), math.sin(rad)
        qx = (grid_x - size / 2 - tx[k]) / scale
        qy = (grid_y - size / 2 - ty[k]) / scale
        px = cos * qx + sin * qy + centre[0]
        py = -sin * qx + cos * qy + centre[1]

        # Mouth: the still's pixel shown at (px, py), moving only vertically. u is the
        # height below the lip line; e is the mouth's elliptic profile, g the jaw's.
        o = float(opening[k])
        u = py - (y_lip + slope * (px - xc))
        dx = (px - xc) / (0.5 * width)
        e = np.clip(1.0 - dx**2, 0.0, None) ** 0.7
        g = np.exp(-0.5 * ((px - xc) / (0.9 * width)) ** 2)
        below = u >= 0
        blend = np.exp(-np.clip(u, 0, None) / (0.25 * width))
        chin = np.exp(-((np.clip(u - chin_u, 0, None) / (0.7 * width)) ** 2))
        drop = o * jaw_drop * (blend * e + (1.0 - blend) * g) * chin
        lift = o * lip_lift * e * np.exp(np.clip(u, None, 0) / (0.25 * width))
        src_u = np.where(below, u - drop, u + lift)
        src_y = py + (src_u - u)
        frame = cv2.remap(
            source,
            px.astype(np.float32),
            src_y.astype(np.float32),
            interpolation=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT_101,
        )

        # Mouth interior where the lips parted: the source lies across the lip line.
        if o > 0:
            gap = np.where(below, drop - u, lift + u) * scale  # > 0 inside, in out pixels
            parted = o * (jaw_drop + lip_lift) * e * scale  # opening height, out pixels
            mask = np.clip(gap + 0.5, 0.0, 1.0) * np.clip(parted, 0.0, 1.0)
            mask = mask.astype(np.float32)[..., None]
            if mask.any():
                depth = np.clip(1.0 - 0.35 * np.abs(dx), 0.0, 1.0).astype(np.float32)
                inside = _MOUTH_COLOUR * (0.7 + 0.3 * depth[..., None])
                frame = (frame * (1.0 - mask) + inside * mask + 0.5).astype(np.uint8)
        yield frame


# --------------------------------------------------------------------------- builders


def make_talking_head(
    path: str | os.PathLike,
    *,
    seconds: float = 3.0,
    fps: float = 25.0,
    size: int = 256,
    sample_rate: int = 16000,
    seed: int = 0,
    head_motion: bool = True,
    speech: np.ndarray | None = None,
) -> Path:
    """Write a synthetic talking-head clip: H.264 video with AAC speech-like audio.

    With ``speech`` (e.g. a TTS recording) the clip lasts as long as the speech, which
    is its audio track, and the mouth opens with the speech's loudness
    (:func:`speech_mouth_opening`); ``seconds`` is then ignored.

    Args:
        path: output file (``.mp4``).
        seconds: duration.
        fps: frame rate.
        size: width and height of the square frames.
        sample_rate: audio sample rate in Hz.
        seed: seeds the syllables, the voice and the head motion.
        head_motion: add a slight smooth head motion (a few pixels, +-2 degrees).
        speech: mono float samples at ``sample_rate`` to use as the audio track and to
            drive the mouth.

    Returns:
        The path written.
    """
    if speech is None:
        frames = _talking_frames(seconds, fps, size, seed, head_motion)
        audio = speech_audio(seconds, sample_rate, seed)
    else:
        audio = np.asarray(speech, np.float32)
        seconds = audio.size / sample_rate
        n = max(1, math.floor(seconds * fps + 1e-6))
        opening = speech_mouth_opening(audio, sample_rate, n, fps)
        frames = _talking_frames(seconds, fps, size, seed, head_motion, opening)
    return write_video(path, frames, fps, audio=audio, sample_rate=sample_rate)


def speech_mouth_opening(
    audio: np.ndarray, sample_rate: int, n_frames: int, fps: float
) -> np.ndarray:
    """Mouth opening in [0, 1] per video frame from a recording's loudness: the RMS over
    each frame's 1/fps window relative to its 95th percentile (clipped to 1), lightly
    smoothed (a mouth does not move faster than ~10 Hz)."""
    from scipy.ndimage import gaussian_filter1d

    from nvp.metrics.sync import audio_envelope

    env = audio_envelope(audio, sample_rate, n_frames, fps)
    ref = float(np.percentile(env, 95)) if env.size else 0.0
    if ref <= 0:
        return np.zeros(n_frames)
    level = np.clip(env / ref, 0.0, 1.0)
    return np.clip(gaussian_filter1d(level, 0.7), 0.0, 1.0)


def make_silent_video(
    path: str | os.PathLike,
    *,
    seconds: float = 1.0,
    fps: float = 25.0,
    size: int = 128,
    seed: int = 0,
) -> Path:
    """Write a talking-head clip like :func:`make_talking_head` without an audio track."""
    return write_video(path, _talking_frames(seconds, fps, size, seed, True), fps)


def make_noise_video(
    path: str | os.PathLike,
    seconds: float = 1.0,
    fps: float = 25.0,
    size: int = 64,
    with_audio: bool = True,
    *,
    sample_rate: int = 16000,
    seed: int = 0,
) -> Path:
    """Write a clip of random colour noise (no face), with white-noise audio if asked."""
    rng = np.random.default_rng([seed, 3])
    n_frames = max(1, math.floor(seconds * fps + 1e-6))
    frames = (rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n_frames))
    audio = None
    if with_audio:
        audio = (0.1 * rng.standard_normal(round(seconds * sample_rate))).astype(np.float32)
    return write_video(path, frames, fps, audio=audio, sample_rate=sample_rate)


def counter_level(index: int, n_frames: int) -> int:
    """Grey level of frame ``index`` in a clip of :func:`make_counter_video`."""
    step = max(1, 255 // max(1, n_frames - 1))
    return min(255, index * step)


def make_counter_video(
    path: str | os.PathLike,
    n_frames: int,
    *,
    fps: float = 30.0,
    timestamps: Sequence[float] | None = None,
    size: int = 64,
) -> Path:
    """Write flat grey frames whose level encodes the frame index (lossless H.264).

    Frame ``j`` has grey level :func:`counter_level` ``(j, n_frames)``. With
    ``timestamps`` (seconds, increasing, one per frame) the frames are stored at those
    times, at a variable frame rate (millisecond time base); the last frame lasts
    ``1 / fps``. Otherwise they are at ``j / fps``.
    """
    if timestamps is not None and len(timestamps) != n_frames:
        raise ValueError("timestamps must have one entry per frame")
    if timestamps is None:
        levels = (counter_level(j, n_frames) for j in range(n_frames))
        grey = (np.full((size, size, 3), level, np.uint8) for level in levels)
        return write_video(path, grey, fps, crf=0)
    tb = Fraction(1, 1000)
    with _temp_output(path) as tmp, av.open(str(tmp), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "0"}
        stream.codec_context.time_base = tb
        stream.time_base = tb
        for j, t in enumerate(timestamps):
            frame = av.VideoFrame.from_ndarray(
                np.full((size, size, 3), counter_level(j, n_frames), np.uint8), format="rgb24"
            )
            frame.pts = round(t * 1000)
            frame.time_base = tb
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return Path(path)


def make_corrupt_file(
    path: str | os.PathLike,
    from_path: str | os.PathLike,
    *,
    mode: str = "garble",
    seed: int = 0,
) -> Path:
    """Write a damaged copy of ``from_path`` that FFmpeg cannot decode completely.

    Modes:
        ``"garble"``: random bytes over the middle fifth of the file; an MP4 written by
            :func:`write_video` still opens but decoding fails partway.
        ``"truncate"``: only the first 40 % of the file (the MP4 index is lost).
        ``"header"``: random bytes over the first quarter (not recognised as media).
    """
    data = bytearray(Path(from_path).read_bytes())
    rng = np.random.default_rng([seed, 4])
    n = len(data)
    if mode == "garble":
        start, stop = int(0.4 * n), int(0.6 * n)
    elif mode == "header":
        start, stop = 0, max(64, n // 4)
    elif mode == "truncate":
        data = data[: int(0.4 * n)]
        start = stop = 0
    else:
        raise ValueError(f"unknown mode {mode!r}: expected 'garble', 'truncate' or 'header'")
    stop = min(stop, len(data))
    data[start:stop] = rng.integers(0, 256, stop - start, dtype=np.uint8).tobytes()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(bytes(data))
    return out
