"""Text to speech for ``nvp say``: any command that writes a WAV file (espeak-ng by default).

The backend is a command template (:class:`~nvp.reenact.config.TTSConfig`), run without a
shell, e.g. ``espeak-ng -v {voice} -s {rate} -w {wav} -f {text_file}`` (the default; the
Debian package ``espeak-ng``, which ``scripts/setup.sh`` installs where it can) or
``piper --model en_US.onnx --output_file {wav}`` reading the text from ``{text_file}``
through a wrapper script. The result is checked: a WAV with samples, and speech in it.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from nvp.errors import InputError, MissingDependencyError
from nvp.reenact.config import TTSConfig


def _command(cfg: TTSConfig, text: str, wav: Path, text_file: Path) -> list[str]:
    try:
        parts = shlex.split(cfg.command)
    except ValueError as exc:
        raise InputError(f"tts.command is not a valid command line ({exc})") from exc
    if not parts:
        raise InputError("tts.command is empty")
    values = {
        "wav": str(wav),
        "text_file": str(text_file),
        "text": text,
        "voice": cfg.voice,
        "rate": str(cfg.rate),
    }
    try:
        return [p.format(**values) for p in parts]
    except (KeyError, IndexError) as exc:
        raise InputError(
            f"tts.command has an unknown placeholder {exc} (known: {', '.join(values)})"
        ) from exc


def synthesize(text: str, out_wav: str | Path, cfg: TTSConfig | None = None) -> Path:
    """Speak ``text`` into the WAV file ``out_wav`` with the configured command.

    Raises:
        InputError: empty text or text without anything speakable, a command that fails or
            writes no audio, or audio without speech.
        MissingDependencyError: the TTS program is not installed.
    """
    from nvp.audio.vad import speech_seconds
    from nvp.io.audio import load_audio

    cfg = cfg or TTSConfig()
    text = text.strip()
    if not text:
        raise InputError("the text is empty: nothing to say")
    if not any(ch.isalnum() for ch in text):
        raise InputError(f"the text {text!r} holds no words to speak")
    out_wav = Path(out_wav)
    with tempfile.TemporaryDirectory(prefix="nvp-tts-") as tmp:
        text_file = Path(tmp) / "text.txt"
        text_file.write_text(text, encoding="utf-8")
        wav = Path(tmp) / "speech.wav"
        cmd = _command(cfg, text, wav, text_file)
        if shutil.which(cmd[0]) is None:
            raise MissingDependencyError(
                f"the TTS program {cmd[0]!r} is not installed (Debian/Ubuntu: "
                "`apt-get install espeak-ng`, which `make setup` does where it may), or set "
                "tts.command to another command that writes {wav}"
            )
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=cfg.timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise InputError(f"the TTS command timed out after {cfg.timeout_s:g} s") from exc
        if proc.returncode != 0:
            err = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no message)"]
            raise InputError(f"the TTS command failed ({proc.returncode}): {err[0]}")
        if not wav.is_file() or wav.stat().st_size <= 44:
            raise InputError(f"the TTS command wrote no audio for {text!r}")
        audio = load_audio(wav, 16000)
        if float(np.abs(audio).max()) < 1e-4 or speech_seconds(audio) < 0.1:
            raise InputError(f"the TTS produced no speech for {text!r}")
        out_wav.parent.mkdir(parents=True, exist_ok=True)
        tmp_out = out_wav.with_name(f".{out_wav.name}.tmp")
        shutil.copyfile(wav, tmp_out)
        tmp_out.replace(out_wav)
    return out_wav


def say(cfg: Any, target: str | Path, text: str, out: str | Path, keep_wav: bool = False):
    """The ``say`` stage: speak ``text`` with the TTS of ``cfg.tts``, then reenact ``target``
    with it (:func:`nvp.reenact.pipeline.reenact_target`); with ``keep_wav`` the speech is
    kept as ``out`` with the suffix ``.wav``. Returns what ``reenact_target`` returns."""
    import shutil
    import tempfile

    from nvp.config import to_object
    from nvp.io.files import check_output_file
    from nvp.io.video import OUTPUT_SUFFIXES
    from nvp.reenact.pipeline import reenact_target

    obj = to_object(cfg) if isinstance(cfg, DictConfig) else cfg
    check_output_file(out, OUTPUT_SUFFIXES, "video")
    with tempfile.TemporaryDirectory(prefix="nvp-say-") as tmp:
        wav = synthesize(text, Path(tmp) / "speech.wav", obj.tts)
        if keep_wav:
            shutil.copyfile(wav, Path(out).with_suffix(".wav"))
        return reenact_target(obj, target, wav, out)
