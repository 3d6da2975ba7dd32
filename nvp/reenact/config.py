"""Configuration of inference: ``nvp reenact``, ``nvp say`` and ``nvp evaluate``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class TTSConfig:
    """The text-to-speech backend of ``nvp say``: any command that writes a WAV file."""

    command: str = "espeak-ng -v {voice} -s {rate} -w {wav} -f {text_file}"
    """Command template, split like a shell line (no shell runs it). Placeholders:
    ``{wav}`` (the WAV file to write), ``{text_file}`` (a UTF-8 file holding the text),
    ``{text}`` (the text itself, as one argument), ``{voice}``, ``{rate}``."""
    voice: str = "en-us"
    """Voice name passed as ``{voice}`` (espeak-ng: ``en-us``, ``en``, ``de``, ...)."""
    rate: int = 150
    """Speaking rate passed as ``{rate}`` (espeak-ng: words per minute)."""
    timeout_s: float = 120.0
    """The command is stopped after this many seconds."""


@dataclass
class ReenactConfig:
    """``nvp reenact`` / ``nvp say``: audio -> expressions -> mesh -> renderer -> mp4."""

    output: Literal["crop", "full"] = "crop"
    """``crop``: the renderer's square crop (the store's size); ``full``: pasted back into
    the full original frame through the stored crop squares (needs the source video)."""
    side_by_side: bool = False
    """Put the driving target frame to the left of the reenacted one."""
    smooth_sigma: float = 0.0
    """Gaussian smoothing of the expressions over time, sigma in frames (0 = none)."""
    mouth_only: bool = False
    """Take only the mouth region from the audio (per-vertex mouth weight of the face
    model); the upper face keeps the target's tracked expression of the reused frame."""
    frames: Literal["all", "train", "val", "test"] = "all"
    """Which of the target's frames are reused (in order, looping back and forth)."""
    batch: int = 8
    """Frames rendered per batch."""
    chunk_seconds: float = 10.0
    """Audio is processed in chunks of this length (bounded memory for long files)."""
    min_speech_seconds: float = 0.3
    """Refuse audio in which the voice activity detector finds less speech than this
    (0 = accept anything, e.g. to render silence on purpose)."""
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1``..."""
    crf: int = 18
    """x264 constant rate factor of the mp4."""
    paste_feather: float = 0.04
    """Full-frame output: width of the soft edge of the pasted region, relative to the
    crop side."""
    tts: TTSConfig = field(default_factory=TTSConfig)
    """Text-to-speech for ``nvp say``."""


@dataclass
class EvaluateConfig:
    """``nvp evaluate``: self-reenactment on the held-out frames of the target video."""

    split: Literal["train", "val", "test", "heldout"] = "test"
    """Which frames of the target store are evaluated (the held-out ``test`` split by
    default; ``heldout`` = val and test together, consecutive in time: twice the frames for
    the lip-motion measures)."""
    max_frames: int = 0
    """Evaluate at most this many frames, evenly spread over the split (0 = all)."""
    batch: int = 8
    """Frames rendered per batch."""
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu``, ``cuda``..."""
    landmarks: Literal["mediapipe", "dlib"] = "mediapipe"
    """Landmark detector of the mouth landmark distance (``dlib``: the 68 points the paper
    used; needs ``dlib-bin`` and ``face-recognition-models``)."""
    syncnet: str | None = None
    """Path of ``syncnet_v2.model`` (SyncNet offset / confidence, LSE-D / LSE-C); None
    skips these and says so in the report."""
    lpips_vgg: str | None = None
    """VGG16 ImageNet weights in torchvision's format for LPIPS (None skips LPIPS)."""
    lpips_lin: str | None = None
    """The ``lpips`` package's ``weights/v0.1/vgg.pth`` linear layers for LPIPS."""
    max_lag: int = 5
    """Largest lag (frames) searched by the offline sync proxy."""
    video: bool = True
    """Write the side-by-side video ground truth | visual tracking | audio-driven."""
    crf: int = 18
    """x264 constant rate factor of the side-by-side video."""
    smooth_sigma: float = 0.0
    """Gaussian smoothing of the audio-driven expressions over time, sigma in frames (use the
    value ``nvp reenact`` uses)."""
    lips: bool = True
    """Measure lip motion (mouth opening over time: geometry and landmarks on the frames, with
    correlation, lag and amplitude ratio)."""
    closures: bool = True
    """Bilabial closure check of the lip-motion section (English speech: pocketsphinx phone
    alignment of a Whisper transcript)."""
    language: str = "en"
    """Language of the speech; the closure check applies to English (``en``) only."""
    transcript: str | None = None
    """Transcript of the evaluated speech (None = Whisper's); for the closure check."""
    audio: list[str] = field(default_factory=list)
    """Cross-speaker mode: drive the target with these audio files instead of evaluating
    self-reenactment (``nvp evaluate --audio A1 A2 ...``)."""
    strip_seconds: float = 2.0
    """Cross-speaker mode: seconds of mouth crops in each audio's strip."""
