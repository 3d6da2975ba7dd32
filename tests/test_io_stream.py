"""Tests of the streaming and random-access I/O: iter_audio/audio_info, write_video with
audio chunks, FrameReader, and the chunk-wise voice activity detection."""

from __future__ import annotations

import math
import os
import tracemalloc
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile

from nvp.errors import InputError, MissingDependencyError
from nvp.io.audio import AudioInfo, _trim_padding, audio_info, iter_audio, load_audio, write_wav
from nvp.io.synthetic import make_counter_video, make_silent_video, mouth_opening, speech_audio
from nvp.io.video import FrameReader, iter_frames, probe, resampled_frame_count, write_video

SR = 16000


def _tone(seconds: float, rate: int, freq: float = 440.0, amp: float = 0.4) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _grey_frames(n: int, size: int = 32):
    return (np.full((size, size, 3), (7 * j) % 256, np.uint8) for j in range(n))


# --------------------------------------------------------------------------- iter_audio


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory) -> dict[str, tuple[Path, int]]:
    """(file, number of samples at 16 kHz the file should give) for three kinds of file."""
    root = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(0)
    voice = (_tone(1.37, SR) + 0.05 * rng.standard_normal(round(1.37 * SR))).astype(np.float32)
    wav = write_wav(root / "a.wav", voice, SR)
    # An MP4 whose AAC track needs its encoder padding trimmed; 1.37 s is not a whole
    # number of AAC frames nor of video frames.
    mp4 = write_video(root / "a.mp4", _grey_frames(34), 25, audio=voice, sample_rate=SR)
    # 44.1 kHz stereo FLAC: channels averaged, resampled by FFmpeg.
    stereo = np.stack([_tone(2.05, 44100, 300), _tone(2.05, 44100, 500)], axis=1)
    flac = root / "b.flac"
    soundfile.write(flac, stereo, 44100)
    return {
        "wav": (wav, len(voice)),
        "mp4": (mp4, len(voice)),
        "flac44k": (flac, round(2.05 * SR)),
    }


@pytest.mark.parametrize("kind", ["wav", "mp4", "flac44k"])
@pytest.mark.parametrize("chunk_seconds", [0.25, 0.1234, 10.0])
def test_iter_audio_chunks_equal_load_audio(audio_files, kind, chunk_seconds):
    path, n_expected = audio_files[kind]
    whole = load_audio(path, SR)
    assert whole.dtype == np.float32
    if kind == "flac44k":
        assert abs(len(whole) - n_expected) <= 2
    else:
        assert len(whole) == n_expected  # the MP4's padding is trimmed
    chunks = list(iter_audio(path, SR, chunk_seconds=chunk_seconds))
    size = round(chunk_seconds * SR)
    assert all(c.dtype == np.float32 and c.ndim == 1 for c in chunks)
    assert [len(c) for c in chunks[:-1]] == [size] * (len(chunks) - 1)
    assert 1 <= len(chunks[-1]) <= size
    assert np.array_equal(np.concatenate(chunks), whole)  # sample for sample


def test_iter_audio_other_rates_and_errors(audio_files, tmp_path):
    path, _ = audio_files["mp4"]
    for rate in (8000, 22050):
        chunks = list(iter_audio(path, rate, chunk_seconds=0.3))
        assert np.array_equal(np.concatenate(chunks), load_audio(path, rate))
    with pytest.raises(InputError, match="not found"):
        iter_audio(tmp_path / "nope.wav")  # checked when called, before iterating
    silent = make_silent_video(tmp_path / "silent.mp4", seconds=0.2, size=32)
    with pytest.raises(InputError, match="no audio track"):
        iter_audio(silent)
    with pytest.raises(ValueError, match="at least one sample"):
        iter_audio(path, SR, chunk_seconds=0.0)
    with pytest.raises(ValueError, match="sample_rate"):
        iter_audio(path, 0)


def test_trim_padding_holds_back_at_most_the_slack():
    pieces = [np.arange(k * 10, k * 10 + 10, dtype=np.float32) for k in range(5)]  # 0..49

    def run(declared, slack):
        return np.concatenate(list(_trim_padding(iter(pieces), declared, slack)))

    assert np.array_equal(run(None, 5), np.arange(50))
    assert np.array_equal(run(43, 10), np.arange(43))  # 7 extra samples: padding, cut
    assert np.array_equal(run(37, 10), np.arange(50))  # 13 extra: not padding, kept
    assert np.array_equal(run(60, 10), np.arange(50))  # shorter than declared: as is
    assert np.array_equal(run(50, 10), np.arange(50))


def test_iter_audio_memory_is_bounded(tmp_path):
    """10 minutes of 16 kHz audio (38 MB decoded) stream through in 10-s chunks."""
    minutes = 10
    n = minutes * 60 * SR
    path = tmp_path / "long.flac"
    with soundfile.SoundFile(path, "w", SR, 1, subtype="PCM_16") as f:
        for k in range(minutes):  # written a minute at a time, too
            t = (np.arange(60 * SR) + k * 60 * SR) / SR
            f.write((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32))
    decoded_bytes = n * 4
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        count = total = 0
        for chunk in iter_audio(path, SR, chunk_seconds=10.0):
            count += 1
            total += chunk.size
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == n and count == minutes * 6
    # About two 10-s chunks (640 kB each) plus decoding pieces, not the 38.4 MB track.
    assert peak < decoded_bytes / 10, f"peak {peak / 1e6:.1f} MB"
    info = audio_info(path)
    assert info.duration_s == pytest.approx(minutes * 60)


# --------------------------------------------------------------------------- audio_info


def test_audio_info(audio_files, tmp_path):
    wav, n = audio_files["wav"]
    assert audio_info(wav) == AudioInfo(
        duration_s=pytest.approx(n / SR), sample_rate=SR, channels=1, codec="pcm_s16le"
    )
    mp4, n = audio_files["mp4"]
    info = audio_info(mp4)
    assert (info.sample_rate, info.channels, info.codec) == (SR, 1, "aac")
    assert info.duration_s == pytest.approx(n / SR)  # the declared, trimmed duration
    flac, _ = audio_files["flac44k"]
    info = audio_info(flac)
    assert (info.sample_rate, info.channels, info.codec) == (44100, 2, "flac")
    assert info.duration_s == pytest.approx(2.05)

    with pytest.raises(InputError, match="not found") as error:
        audio_info(tmp_path / "nope.ogg")
    assert error.value.path == str(tmp_path / "nope.ogg")
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all\n" * 30)
    with pytest.raises(InputError, match="not a readable"):
        audio_info(text)
    silent = make_silent_video(tmp_path / "silent.mp4", seconds=0.2, size=32)
    with pytest.raises(InputError, match="no audio track"):
        audio_info(silent)
    with pytest.raises(InputError, match="folder"):
        audio_info(tmp_path)


# --------------------------------------------------------------------------- write_video


def _random_chunks(audio: np.ndarray, seed: int):
    rng = np.random.default_rng(seed)
    cuts = np.cumsum(rng.integers(1, 3000, size=len(audio) // 200))
    return np.split(audio, cuts[cuts < len(audio)])


def test_write_video_audio_chunks_match_the_array(tmp_path):
    fps, n_frames = 25, 20  # 0.8 s of video
    rng = np.random.default_rng(1)
    audio = (_tone(1.1, SR) + 0.02 * rng.standard_normal(round(1.1 * SR))).astype(np.float32)
    a = write_video(tmp_path / "array.mp4", _grey_frames(n_frames), fps, audio=audio)
    reference = load_audio(a, SR)
    assert len(reference) == len(audio)  # the 0.3 s after the last frame are kept

    pulled_now = [0]  # samples pulled from the chunk generator so far
    pulled = []  # ... when each frame was taken

    def chunks():
        for chunk in _random_chunks(audio, 2):
            pulled_now[0] += len(chunk)
            yield chunk

    def frames():
        for frame in _grey_frames(n_frames):
            pulled.append(pulled_now[0])
            yield frame

    b = write_video(tmp_path / "gen.mp4", frames(), fps, audio=chunks())
    assert np.array_equal(load_audio(b, SR), reference)
    # Pulled lazily: when frame k is taken, at most the audio up to the end of frame k - 1
    # and one more chunk (< 3000 samples) have been read.
    per_frame = SR / fps
    assert all(p < math.ceil(k * per_frame) + 3000 for k, p in enumerate(pulled))
    assert pulled[-1] < len(audio)  # the audio after the video: pulled after the frames

    # A list of chunks, int16 chunks and empty chunks are fine too.
    pcm = [np.round(c * 32767).astype(np.int16) for c in _random_chunks(audio, 3)]
    c = write_video(tmp_path / "list.mp4", _grey_frames(n_frames), fps, audio=[*pcm, pcm[:0]])
    d = write_video(tmp_path / "pcm.mp4", _grey_frames(n_frames), fps, audio=np.concatenate(pcm))
    assert np.array_equal(load_audio(c, SR), load_audio(d, SR))


def test_write_video_audio_chunks_shorter_than_video(tmp_path):
    audio = _tone(0.5, SR)
    path = write_video(
        tmp_path / "short.mp4", _grey_frames(25), 25, audio=iter(np.array_split(audio, 7))
    )
    info = probe(path)
    assert info.duration_s == pytest.approx(1.0)
    assert info.audio_duration_s == pytest.approx(0.5)
    assert np.array_equal(
        load_audio(path, SR),
        load_audio(write_video(tmp_path / "ref.mp4", _grey_frames(25), 25, audio=audio), SR),
    )
    with pytest.raises(ValueError, match="mono"):
        write_video(tmp_path / "bad.mp4", _grey_frames(5), 25, audio=iter([np.zeros((2, 9))]))
    assert not (tmp_path / "bad.mp4").exists()


# --------------------------------------------------------------------------- FrameReader


def _clip(
    path: Path,
    n: int,
    *,
    fps: float = 30,
    stamps: list[float] | None = None,
    gop: int | None = None,
    size: int = 32,
    codec: str = "libx264",
) -> Path:
    """A clip with moving content (so that the encoder uses P- and B-frames).

    ``stamps`` (seconds) store the frames at a variable rate (millisecond time base);
    ``gop`` sets the keyframe interval (libx264's default is 250 frames)."""
    tb = Fraction(1, 1000) if stamps is not None else Fraction(1, int(fps))
    rng = np.random.default_rng(n)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "12"}
        if gop is not None:
            stream.codec_context.gop_size = gop
        stream.codec_context.time_base = tb
        if stamps is not None:
            stream.time_base = tb
        for j in range(n):
            image = np.full((size, size, 3), 30, np.uint8)
            x = (2 * j) % (size - 6)
            image[4:12, x : x + 6] = 240
            image[size // 2 :] = 40 + abs(j % 200 - 100)  # smooth: no scene cuts
            image[:3, :3] = rng.integers(0, 256, (3, 3, 3))
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = round(stamps[j] * 1000) if stamps is not None else j
            frame.time_base = tb
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _vfr_stamps(n: int, seed: int = 0) -> list[float]:
    """Irregular frame times around 30 fps (20 to 50 ms apart)."""
    steps = np.random.default_rng(seed).uniform(0.020, 0.050, n - 1)
    return [0.0, *np.round(np.cumsum(steps), 3).tolist()]


@pytest.fixture(scope="module")
def reader_clips(tmp_path_factory) -> dict[str, tuple[Path, float]]:
    """(clip, output fps) for the FrameReader tests."""
    root = tmp_path_factory.mktemp("reader")
    n = 90
    return {
        # libx264's default keyframe interval (250) with write_video: one keyframe.
        "long_gop": (
            write_video(root / "long.mp4", _frames_of(n), 30, crf=12),
            25.0,
        ),
        "short_gop": (_clip(root / "short.mp4", n, gop=8), 25.0),
        "vfr": (make_counter_video(root / "vfr.mp4", n, fps=30, timestamps=_vfr_stamps(n)), 25.0),
        "vfr_short_gop": (_clip(root / "vfrs.mp4", n, stamps=_vfr_stamps(n, 1), gop=10), 25.0),
        "mkv_up": (_clip(root / "up.mkv", 60, fps=25, gop=9), 30.0),
        "mpeg_ps": (_clip(root / "ps.mpg", 60, fps=25, gop=12, codec="mpeg1video"), 30.0),
    }


def _frames_of(n: int, size: int = 32):
    for j in range(n):
        image = np.full((size, size, 3), 60, np.uint8)
        row = abs(j % (2 * size - 8) - (size - 4))  # a band moving down and up
        image[row : row + 4] = 250
        image[:, : size // 3] = 40 + j  # smooth: no scene cuts, one keyframe
        yield image


@pytest.mark.parametrize(
    "name", ["long_gop", "short_gop", "vfr", "vfr_short_gop", "mkv_up", "mpeg_ps"]
)
def test_frame_reader_equals_iter_frames(reader_clips, name):
    path, fps = reader_clips[name]
    expected = [frame for _, _, frame in iter_frames(path, fps)]
    n = len(expected)
    assert n == resampled_frame_count(probe(path), fps)
    orders = {
        "forward": list(range(n)),
        "reverse": list(range(n - 1, -1, -1)),
        "random": np.random.default_rng(4).permutation(n).tolist(),
        "ping-pong": [*range(n), *range(n - 2, -1, -1), *range(1, n)],
    }
    for order, indices in orders.items():
        with FrameReader(path, fps, block_size=8, cache_blocks=3) as reader:
            assert len(reader) == n
            for i in indices:
                frame = reader[i]
                assert frame.dtype == np.uint8 and frame.shape == expected[i].shape
                assert np.array_equal(frame, expected[i]), f"{order}: frame {i}"
        if order == "forward":
            assert reader.seeks == 0, "sequential reading must not seek"


def test_frame_reader_default_blocks_and_api(reader_clips):
    path, fps = reader_clips["vfr_short_gop"]
    expected = [frame for _, _, frame in iter_frames(path, fps)]
    reader = FrameReader(path, fps)
    assert len(reader) == len(expected) and reader.fps == fps
    assert np.array_equal(reader[-1], expected[-1])
    assert all(np.array_equal(a, b) for a, b in zip(reader, expected))
    frame = reader[3]
    frame[:] = 0  # a fresh copy: the cache is untouched
    assert np.array_equal(reader[3], expected[3])
    with pytest.raises(IndexError):
        reader[len(expected)]
    reader.close()
    with pytest.raises(ValueError, match="closed"):
        reader[0]
    with pytest.raises(ValueError, match="fps"):
        FrameReader(path, 0)
    with pytest.raises(InputError, match="not found"):
        FrameReader(path.with_name("nope.mp4"), 25)


@pytest.mark.parametrize("gop", [None, 12])
def test_frame_reader_reverse_cost_is_linear(tmp_path, gop):
    """Decoded frames: forward = every frame once without seeking; reverse = a small
    multiple of that, growing linearly with the length (not quadratically)."""
    costs = {}
    for n in (150, 300):
        path = _clip(tmp_path / f"c{n}_{gop}.mp4", n, gop=gop, size=16)
        frames = probe(path).n_frames
        with FrameReader(path, 25) as reader:
            for i in range(len(reader)):
                reader[i]
            assert (reader.decoded_frames, reader.seeks) == (frames, 0)
        with FrameReader(path, 25) as reader:
            for i in range(len(reader) - 1, -1, -1):
                reader[i]
            costs[n] = reader.decoded_frames
            assert reader.decoded_frames <= 3 * frames, (n, reader.decoded_frames)
    # Twice the length: about twice the decoding (O(N^2) would give four times).
    assert costs[300] <= 2.6 * costs[150], costs


# --------------------------------------------------------------------------- VAD


def _voice_and_noise() -> np.ndarray:
    rng = np.random.default_rng(5)
    voice = speech_audio(4.0, SR, 0)
    noise = (0.1 * rng.standard_normal(2 * SR)).astype(np.float32)
    return np.concatenate([np.zeros(SR, np.float32), voice, noise, voice[: 3 * SR]])


def test_vad_matches_faster_whisper_and_streams(real_speech):
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    from nvp.audio.vad import default_vad_options, speech_segments, speech_segments_stream

    for audio in (_voice_and_noise(), real_speech):
        for options in (
            default_vad_options(),
            VadOptions(),
            VadOptions(max_speech_duration_s=2.0, min_silence_duration_ms=300),
        ):
            expected = [
                (s["start"] / SR, s["end"] / SR) for s in get_speech_timestamps(audio, options)
            ]
            assert speech_segments(audio, options) == expected
            chunks = _random_chunks(audio, 6)
            assert speech_segments_stream(iter(chunks), options) == expected


@pytest.mark.parametrize("seed", range(4))
def test_vad_segmentation_rule_matches_faster_whisper(monkeypatch, seed):
    """The incremental segmentation against get_speech_timestamps on random probability
    sequences (the model replaced by a fake that returns them), pushed in pieces."""
    import faster_whisper.vad as fw

    from nvp.audio.vad import WINDOW_SAMPLES, _Segmenter

    rng = np.random.default_rng(seed)
    n_windows = 6000  # 192 s
    # Runs of speech-like and silence-like probabilities, 32 ms to 4 s long.
    levels = rng.choice([0.05, 0.3, 0.45, 0.6, 0.95], size=n_windows // 10 + 1)
    probs = np.repeat(levels, rng.integers(1, 125, size=len(levels)))[:n_windows]
    probs = np.clip(probs + rng.normal(0, 0.08, len(probs)), 0, 1).astype(np.float32)
    n_samples = (len(probs) - 1) * WINDOW_SAMPLES + int(rng.integers(1, WINDOW_SAMPLES))
    monkeypatch.setattr(fw, "get_vad_model", lambda: lambda audio: probs)
    for options in (
        fw.VadOptions(),
        fw.VadOptions(min_speech_duration_ms=250, min_silence_duration_ms=100, speech_pad_ms=30),
        fw.VadOptions(threshold=0.4, max_speech_duration_s=1.5, min_silence_duration_ms=200),
        fw.VadOptions(neg_threshold=0.5, max_speech_duration_s=0.8, speech_pad_ms=0),
    ):
        expected = fw.get_speech_timestamps(np.zeros(n_samples, np.float32), options)
        assert len(expected) >= 5
        segmenter = _Segmenter(options)
        for piece in np.array_split(probs, 7):
            segmenter.push(piece)
        assert segmenter.finish(n_samples) == [(s["start"], s["end"]) for s in expected]


@pytest.fixture(scope="module")
def real_speech() -> np.ndarray:
    """Real speech if the shared data is there (the model finds segments in it), else the
    synthetic voice."""
    root = Path(os.environ.get("NVP_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    files = sorted((root / "audio" / "librispeech").glob("*.ogg"))
    if files:
        return load_audio(files[0], SR)[: 8 * SR]
    return speech_audio(6.0, SR, 1)


def test_vad_silence_noise_and_synthetic_voice():
    from nvp.audio.vad import speech_seconds, speech_seconds_stream, speech_segments

    assert speech_seconds(np.zeros(5 * SR, np.float32)) == 0.0
    assert speech_seconds(np.zeros(0, np.float32)) == 0.0
    rng = np.random.default_rng(7)
    noise = (0.2 * rng.standard_normal(10 * SR)).astype(np.float32)
    assert speech_seconds(noise) < 0.5  # measured: 0.0 s
    assert speech_seconds(np.round(noise * 32767).astype(np.int16)) < 0.5

    # The synthetic voice (vowel buzz following a syllable envelope): Silero takes only a
    # little of it for speech (measured: about 1 s of 12 s, of which 8.6 s voiced), and
    # only where the voice is.
    seconds = 12.0
    voice = speech_audio(seconds, SR, 0)
    segments = speech_segments(voice)
    total = sum(e - s for s, e in segments)
    voiced = mouth_opening(np.arange(len(voice)) / SR, seconds=seconds, seed=0) > 0
    assert 0.0 < total < voiced.sum() / SR
    for start, end in segments:
        inside = voiced[int(start * SR) : int(end * SR)]
        assert inside.mean() > 0.5, (start, end)
    assert speech_seconds_stream(np.array_split(voice, 13)) == pytest.approx(total)


def test_vad_missing_dependency(monkeypatch):
    import importlib.util

    from nvp.audio import vad

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnxruntime" else real(name, *a),
    )
    with pytest.raises(MissingDependencyError, match="onnxruntime"):
        vad.speech_seconds(np.zeros(SR, np.float32))


@pytest.mark.realdata
def test_vad_real_speech(real_data):
    from nvp.audio.vad import speech_seconds_stream, speech_segments

    files = sorted((real_data / "audio" / "librispeech").glob("*.ogg"))
    if not files:
        pytest.skip(f"no LibriSpeech clips under {real_data / 'audio'}")
    for path in files:
        duration = audio_info(path).duration_s
        seconds = speech_seconds_stream(iter_audio(path, SR, chunk_seconds=4.0))
        assert seconds > 0.5 * duration, (path.name, seconds, duration)
        assert seconds == pytest.approx(
            sum(e - s for s, e in speech_segments(load_audio(path, SR)))
        )


@pytest.mark.realdata
def test_frame_reader_real_clips(real_data):
    clips = [
        real_data / "video" / "retalking" / "1.mp4",
        real_data / "video" / "grid" / "bbaf2n.mpg",
    ]
    clips = [c for c in clips if c.exists()]
    if not clips:
        pytest.skip("no real clips")
    for clip in clips:
        expected = [frame for _, _, frame in iter_frames(clip, 25)]
        with FrameReader(clip, 25) as reader:
            assert len(reader) == len(expected)
            for i in range(len(expected) - 1, -1, -1):
                assert np.array_equal(reader[i], expected[i]), (clip.name, i)
