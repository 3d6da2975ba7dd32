"""Tests of nvp.io: probing, decoding with frame-rate resampling, audio, writing, errors,
and the synthetic talking-head clip."""

from __future__ import annotations

import math
import os
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from nvp.errors import InputError
from nvp.io import (
    VideoInfo,
    iter_frames,
    load_audio,
    probe,
    resampled_frame_count,
    write_video,
    write_wav,
)
from nvp.io.synthetic import (
    counter_level,
    make_corrupt_file,
    make_counter_video,
    make_noise_video,
    make_silent_video,
    make_talking_head,
    mouth_opening,
)


def _data_dir() -> Path:
    env = os.environ.get("NVP_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _source_index(frame: np.ndarray, n_frames: int) -> int:
    """Index of the make_counter_video frame with the grey level of ``frame``."""
    level = float(frame.mean())
    levels = np.array([counter_level(j, n_frames) for j in range(n_frames)])
    return int(np.abs(levels - level).argmin())


@pytest.fixture(scope="module")
def talking_head(tmp_path_factory) -> Path:
    return make_talking_head(tmp_path_factory.mktemp("th") / "talking_head.mp4")


# --------------------------------------------------------------------------- probe


def test_probe_talking_head(talking_head):
    info = probe(talking_head)
    assert isinstance(info, VideoInfo)
    assert (info.width, info.height) == (256, 256)
    assert info.fps == pytest.approx(25.0)
    assert info.n_frames == 75
    assert info.duration_s == pytest.approx(3.0)
    assert info.has_audio and info.audio_rate == 16000 and info.audio_channels == 1
    assert info.audio_duration_s == pytest.approx(3.0)
    assert info.video_codec == "h264"
    assert not info.variable_frame_rate
    assert info.rotation == 0
    assert resampled_frame_count(info, 25) == 75
    assert resampled_frame_count(info, 30) == 90
    quick = probe(talking_head, scan=False)
    assert quick.n_frames == 75 and quick.duration_s == pytest.approx(3.0)


# --------------------------------------------------------------------------- write/read


def test_mp4_round_trip_flat_colours_and_audio(tmp_path):
    sr, fps, n = 16000, 25, 30
    colours = [(8 * i, 100, 200 - 5 * i) for i in range(n)]
    frames = [np.full((47, 63, 3), c, np.uint8) for c in colours]  # odd size: padded
    t = np.arange(int(1.23 * sr)) / sr
    audio = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    path = write_video(tmp_path / "sub" / "clip.mp4", iter(frames), fps, audio=audio)
    assert path == tmp_path / "sub" / "clip.mp4"
    assert sorted(p.name for p in path.parent.iterdir()) == ["clip.mp4"]  # no temp left

    info = probe(path)
    assert (info.width, info.height) == (64, 48)
    assert info.n_frames == n and info.fps == pytest.approx(fps)
    assert info.duration_s == pytest.approx(n / fps)

    decoded = list(iter_frames(path))
    assert len(decoded) == n
    for i, (index, time_s, frame) in enumerate(decoded):
        assert index == i and time_s == pytest.approx(i / fps)
        assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
        error = np.abs(frame.astype(int) - np.array(colours[i])).max()
        assert error <= 4, f"frame {i}: colour off by {error}"

    back = load_audio(path, sample_rate=sr)
    assert back.dtype == np.float32 and back.ndim == 1
    assert abs(len(back) - len(audio)) <= sr / fps  # within one frame...
    assert len(back) == len(audio)  # ...in fact exact
    assert np.corrcoef(back[1000:-1000], audio[1000:-1000])[0, 1] > 0.99  # no offset


def test_write_video_is_atomic(tmp_path):
    target = tmp_path / "out.mp4"
    target.write_bytes(b"previous content")

    def frames():
        yield np.zeros((32, 32, 3), np.uint8)
        yield np.zeros((32, 32, 3), np.uint8)
        raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError, match="renderer crashed"):
        write_video(target, frames(), 25)
    assert target.read_bytes() == b"previous content"
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]

    with pytest.raises(ValueError, match="at least one frame"):
        write_video(tmp_path / "empty.mp4", [], 25)
    with pytest.raises(ValueError, match="expected"):
        write_video(
            tmp_path / "mixed.mp4",
            [np.zeros((8, 8, 3), np.uint8)] * 2 + [np.zeros((8, 10, 3), np.uint8)],
            25,
        )
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_write_wav_round_trip(tmp_path):
    audio = (0.5 * np.sin(np.arange(8000) / 5.0)).astype(np.float32)
    path = write_wav(tmp_path / "a.wav", audio, 8000)
    back = load_audio(path, sample_rate=8000)
    assert len(back) == len(audio)
    assert np.abs(back - audio).max() < 1e-3


# --------------------------------------------------------------------------- resampling


def test_resample_30_to_25_by_timestamps(tmp_path):
    n = 36  # 1.2 s at 30 fps
    path = make_counter_video(tmp_path / "c30.mp4", n, fps=30)
    info = probe(path)
    assert info.n_frames == n and info.fps == pytest.approx(30)
    assert info.duration_s == pytest.approx(1.2)

    native = [_source_index(f, n) for _, _, f in iter_frames(path)]
    assert native == list(range(n))

    out = list(iter_frames(path, fps=25))
    assert len(out) == resampled_frame_count(info, 25) == math.floor(1.2 * 25) == 30
    assert [i for i, _, _ in out] == list(range(30))
    assert [t for _, t, _ in out] == pytest.approx([i / 25 for i in range(30)])
    # Output frame i shows the latest source frame at or before i / 25 s.
    expected = [math.floor(i * 30 / 25 + 1e-9) for i in range(30)]
    assert [_source_index(f, n) for _, _, f in out] == expected

    assert len(list(iter_frames(path, fps=25, max_frames=7))) == 7


def test_resample_25_to_30_repeats_frames(tmp_path):
    n = 20  # 0.8 s at 25 fps
    path = make_counter_video(tmp_path / "c25.mp4", n, fps=25)
    out = list(iter_frames(path, fps=30))
    assert len(out) == 24
    assert [_source_index(f, n) for _, _, f in out] == [i * 25 // 30 for i in range(24)]
    frames = [f for _, _, f in out]
    assert frames[0] is not frames[1] and not np.shares_memory(frames[0], frames[1])


def test_resample_variable_frame_rate(tmp_path):
    stamps = [0, 0.04, 0.06, 0.13, 0.17, 0.25, 0.26, 0.30, 0.38, 0.40, 0.45, 0.52, 0.56, 0.64]
    n = len(stamps)
    path = make_counter_video(tmp_path / "vfr.mp4", n, fps=25, timestamps=stamps)
    info = probe(path)
    assert info.variable_frame_rate
    assert info.n_frames == n
    assert info.duration_s == pytest.approx(0.68)  # last frame lasts 1/25 s
    assert info.fps == pytest.approx(n / 0.68)

    native = list(iter_frames(path))
    assert [_source_index(f, n) for _, _, f in native] == list(range(n))
    assert [t for _, t, _ in native] == pytest.approx(stamps)

    out = list(iter_frames(path, fps=25))
    assert len(out) == resampled_frame_count(info, 25) == 17
    expected = [max(j for j, s in enumerate(stamps) if s <= i / 25 + 1e-6) for i in range(17)]
    assert [_source_index(f, n) for _, _, f in out] == expected


def test_display_rotation_is_applied(tmp_path):
    path = tmp_path / "rotated.mp4"
    image = np.zeros((32, 64, 3), np.uint8)
    image[:8, :8] = 255  # marker at the top left of the stored frame
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(90)
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    info = probe(path)
    assert info.rotation == 90 and (info.width, info.height) == (32, 64)
    _, _, frame = next(iter_frames(path))
    assert frame.shape == (64, 32, 3)
    assert frame[-4:, :4].mean() > 200 and frame[:4, :4].mean() < 50  # turned 90° ccw


# --------------------------------------------------------------------------- audio


def test_load_audio_resamples_stereo_wav(tmp_path):
    sr = 44100
    t = np.arange(int(1.5 * sr)) / sr
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([tone, tone], axis=1)
    path = tmp_path / "stereo.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(np.round(stereo * 32767).astype("<i2").tobytes())
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.shape == (24000,)
    assert np.abs(audio).max() == pytest.approx(0.5, abs=0.01)
    peak_hz = np.abs(np.fft.rfft(audio)).argmax() * 16000 / len(audio)
    assert peak_hz == pytest.approx(440, abs=2)


@pytest.mark.parametrize(
    ("name", "codec", "rate"),
    [("a.flac", "flac", 44100), ("a.mp3", "libmp3lame", 44100), ("a.ogg", "libopus", 48000)],
)
def test_load_audio_formats(tmp_path, name, codec, rate):
    path = tmp_path / name
    tone = (0.5 * np.sin(2 * np.pi * 300 * np.arange(rate) / rate)).astype(np.float32)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate, layout="stereo")
        frame = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    audio = load_audio(path, sample_rate=16000)
    assert abs(len(audio) - 16000) <= 16000 // 25
    assert audio.min() >= -1.0 and audio.max() <= 1.0


# --------------------------------------------------------------------------- errors


def _raises_naming(path: Path, func, *args, match: str | None = None) -> InputError:
    with pytest.raises(InputError, match=match) as info:
        result = func(path, *args)
        if not isinstance(result, np.ndarray):
            list(result)  # iter_frames is lazy
    assert info.value.path == str(path)
    assert str(path) in str(info.value)
    return info.value


def test_errors_missing_folder_text_empty(tmp_path):
    _raises_naming(tmp_path / "nope.mp4", probe, match="not found")
    _raises_naming(tmp_path / "nope.wav", load_audio, match="not found")
    _raises_naming(tmp_path, probe, match="folder")
    with pytest.raises(InputError):
        iter_frames(tmp_path / "nope.mp4")  # checked when called, before iterating
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    _raises_naming(text, probe, match="not a readable")
    _raises_naming(text, iter_frames, match="not a readable")
    _raises_naming(text, load_audio, match="not a readable")
    empty = tmp_path / "empty.mp4"
    empty.touch()
    _raises_naming(empty, probe, match="empty")


def test_errors_corrupt_files(tmp_path):
    good = make_noise_video(tmp_path / "noise.mp4", seconds=2.0, size=64)
    assert len(list(iter_frames(good, fps=25))) == 50

    header = make_corrupt_file(tmp_path / "header.mp4", good, mode="header")
    _raises_naming(header, probe)
    truncated = make_corrupt_file(tmp_path / "truncated.mp4", good, mode="truncate")
    _raises_naming(truncated, probe)
    garbled = make_corrupt_file(tmp_path / "garbled.mp4", good, mode="garble")
    error = _raises_naming(garbled, iter_frames, 25.0, match=r"corrupt video data after t=\d")
    assert "t=0.000s" not in str(error)  # it fails partway, after some good frames


def test_errors_no_audio_and_no_video(tmp_path):
    silent = make_silent_video(tmp_path / "silent.mp4", seconds=0.4, size=64)
    info = probe(silent)
    assert not info.has_audio and info.audio_rate is None and info.n_frames == 10
    _raises_naming(silent, load_audio, match="no audio track")

    wav = write_wav(tmp_path / "voice.wav", np.zeros(1600, np.float32))
    _raises_naming(wav, probe, match="no video stream")
    _raises_naming(wav, iter_frames, match="no video stream")


# --------------------------------------------------------------------------- synthetic


def test_noise_video(tmp_path):
    info = probe(make_noise_video(tmp_path / "n.mp4", seconds=0.4, fps=25, size=32))
    assert (info.width, info.height, info.n_frames, info.has_audio) == (32, 32, 10, True)
    info = probe(make_noise_video(tmp_path / "m.mp4", 0.4, with_audio=False))
    assert not info.has_audio


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_talking_head_face_and_lip_sync(talking_head):
    face_mesh = pytest.importorskip("mediapipe").solutions.face_mesh
    ratios = []
    with face_mesh.FaceMesh(static_image_mode=False, refine_landmarks=False) as mesh:
        for _, _, frame in iter_frames(talking_head, fps=25):
            result = mesh.process(frame)
            if not result.multi_face_landmarks:
                ratios.append(np.nan)
                continue
            lm = result.multi_face_landmarks[0].landmark
            xy = {
                k: np.array([lm[k].x * frame.shape[1], lm[k].y * frame.shape[0]])
                for k in (13, 14, 33, 263)
            }
            ratios.append(np.linalg.norm(xy[13] - xy[14]) / np.linalg.norm(xy[33] - xy[263]))
    ratios = np.array(ratios)
    found = ~np.isnan(ratios)
    assert len(ratios) == 75
    assert found.mean() >= 0.95

    audio = load_audio(talking_head, sample_rate=16000)
    assert len(audio) == 48000
    hop = 16000 // 25
    rms = np.array(
        [
            np.sqrt(np.mean(audio[max(0, i * hop - hop // 2) : i * hop + hop // 2] ** 2))
            for i in range(75)
        ]
    )
    r = np.corrcoef(ratios[found], rms[found])[0, 1]
    assert r > 0.5, f"mouth opening vs audio RMS: r = {r:.2f}"
    # The mouth visibly opens and closes.
    assert np.nanmax(ratios) > 0.06 and np.nanmin(ratios) < 0.03
    opening = mouth_opening(np.arange(75) / 25, seconds=3.0, seed=0)
    assert np.corrcoef(ratios[found], opening[found])[0, 1] > 0.7


def test_stored_landmarks_match_face_mesh():
    pytest.importorskip("mediapipe")
    from nvp.io.synthetic import _FALLBACK_POINTS, _still

    _, points = _still()
    for name, (x, y) in _FALLBACK_POINTS.items():
        assert points[name] == pytest.approx((x, y), abs=3.0), name


def test_talking_head_is_deterministic(tmp_path):
    a = make_talking_head(tmp_path / "a.mp4", seconds=0.4, size=64, seed=3)
    b = make_talking_head(tmp_path / "b.mp4", seconds=0.4, size=64, seed=3)
    fa = [f for _, _, f in iter_frames(a)]
    fb = [f for _, _, f in iter_frames(b)]
    assert len(fa) == 10 and all(np.array_equal(x, y) for x, y in zip(fa, fb))
    assert np.array_equal(load_audio(a), load_audio(b))
    info = probe(
        make_talking_head(tmp_path / "c.mp4", seconds=0.6, fps=30, size=96, head_motion=False)
    )
    assert (info.width, info.n_frames, info.fps) == (96, 18, pytest.approx(30))


# --------------------------------------------------------------------------- real data


@pytest.mark.realdata
def test_real_clips_decode_at_25fps():
    root = _data_dir() / "video"
    clips = sorted(
        p for p in root.glob("*/*") if p.suffix.lower() in {".mp4", ".mpg", ".mov", ".mkv", ".avi"}
    )
    if not clips:
        pytest.skip(f"no real clips under {root} (set NVP_DATA to the shared data folder)")
    for clip in clips:
        info = probe(clip)
        assert info.width > 0 and info.height > 0 and info.fps > 0, clip
        assert info.n_frames == pytest.approx(info.duration_s * info.fps, abs=1), clip
        n = 0
        for i, t, frame in iter_frames(clip, fps=25):
            assert i == n and t == pytest.approx(i / 25)
            assert frame.shape == (info.height, info.width, 3) and frame.dtype == np.uint8
            n += 1
        assert n == resampled_frame_count(info, 25) == math.floor(info.duration_s * 25 + 1e-6), clip
        assert info.has_audio, clip
        audio = load_audio(clip, sample_rate=16000)
        assert audio.dtype == np.float32 and audio.ndim == 1
        assert np.abs(audio).max() > 0.01, clip
        expected = info.audio_duration_s or info.duration_s
        assert len(audio) / 16000 == pytest.approx(expected, abs=0.1), clip
