"""Tests of nvp.audio: window convention, extractors, precomputed features, config."""

from __future__ import annotations

import contextlib
import importlib.machinery
import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from nvp.audio import (
    EXTRACTORS,
    AudioFeatureConfig,
    FeatureExtractor,
    extract_windows,
    feature_signature,
    frame_windows,
    load_precomputed,
    make_extractor,
    prepare_audio,
    register,
    resample_rows,
)
from nvp.audio.deepspeech import (
    deepspeech_input_vector,
    speech_features_mfcc,
)
from nvp.audio.whisper import WhisperEncoderExtractor
from nvp.audio.windows import window_centres
from nvp.errors import ConfigError, InputError, MissingDependencyError

SR = 16000


def _data_root() -> Path:
    env = os.environ.get("NVP_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


RELEASE = _data_root() / "nvp_release"


def tone_bursts(
    seconds: float = 2.0, sr: int = SR, period: float = 0.5, on: float = 0.25
) -> np.ndarray:
    """Bursts of a 440 Hz tone plus white noise (broadband, like speech), on for the first
    ``on`` s of every ``period`` s and exactly silent otherwise."""
    t = np.arange(int(seconds * sr)) / sr
    gate = (t % period) < on
    noise = np.random.default_rng(0).standard_normal(t.size)
    return ((0.3 * np.sin(2 * np.pi * 440.0 * t) + 0.1 * noise) * gate).astype(np.float32)


def burst_rows(n_rows: int, rate: float = 50.0, margin: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Rows (at r / rate s) well inside the bursts and well inside the silences."""
    phase = (np.arange(n_rows) / rate) % 0.5
    edge = margin / rate
    loud = (phase > edge) & (phase < 0.25 - edge)
    quiet = (phase > 0.25 + edge) & (phase < 0.5 - edge)
    return np.flatnonzero(loud), np.flatnonzero(quiet)


# --------------------------------------------------------------------------- windows


class TestFrameWindows:
    """Hand-computed windows: rows [c - window // 2, c - window // 2 + window)."""

    def test_video_stride_zero_and_edge(self):
        # Features already at the video rate: no resampling, c(t) = t.
        feats = np.array([[1, 10], [2, 20], [3, 30], [4, 40], [5, 50]], dtype=np.float32)
        zero = frame_windows(feats, 25.0, 5, 25.0, window=4, stride="video", pad="zero")
        edge = frame_windows(feats, 25.0, 5, 25.0, window=4, stride="video", pad="edge")
        assert zero.shape == (5, 4, 2) and zero.dtype == np.float32
        # frame 0 -> rows -2, -1, 0, 1
        np.testing.assert_array_equal(zero[0, :, 0], [0, 0, 1, 2])
        np.testing.assert_array_equal(edge[0, :, 0], [1, 1, 1, 2])
        # frame 2 -> rows 0 .. 3 (fully inside)
        np.testing.assert_array_equal(zero[2], feats[0:4])
        np.testing.assert_array_equal(edge[2], feats[0:4])
        # frame 4 -> rows 2, 3, 4, 5
        np.testing.assert_array_equal(zero[4, :, 1], [30, 40, 50, 0])
        np.testing.assert_array_equal(edge[4, :, 1], [30, 40, 50, 50])

    def test_video_stride_resamples_50hz_to_25fps(self):
        # Row r = 1 + r at 50 Hz; frame t at t / 25 s is row 2t -> value 1 + 2t.
        feats = (1.0 + np.arange(10, dtype=np.float32))[:, None]
        zero = frame_windows(feats, 50.0, 5, 25.0, window=3, stride="video", pad="zero")
        edge = frame_windows(feats, 50.0, 5, 25.0, window=3, stride="video", pad="edge")
        # odd window: rows t - 1, t, t + 1 of the video-rate sequence 1, 3, 5, 7, 9
        np.testing.assert_array_equal(
            zero[..., 0], [[0, 1, 3], [1, 3, 5], [3, 5, 7], [5, 7, 9], [7, 9, 0]]
        )
        np.testing.assert_array_equal(
            edge[..., 0], [[1, 1, 3], [1, 3, 5], [3, 5, 7], [5, 7, 9], [7, 9, 9]]
        )

    def test_video_stride_non_integer_ratio_interpolates(self):
        # 50 Hz rows, 30 fps: frame t sits at row 5t/3; a linear ramp stays exact.
        feats = (2.0 * np.arange(20, dtype=np.float64) + 1.0)[:, None]
        out = frame_windows(feats, 50.0, 6, 30.0, window=1, stride="video")
        expected = 2.0 * (np.arange(6) * 5.0 / 3.0) + 1.0
        np.testing.assert_allclose(out[:, 0, 0], expected, rtol=1e-6)

    def test_resample_rows_matches_np_interp(self):
        rng = np.random.default_rng(0)
        feats = rng.standard_normal((37, 3))
        n_frames, rate, fps = 30, 50.0, 29.97
        got = resample_rows(feats, rate, n_frames, fps)
        times_in, times_out = np.arange(37) / rate, np.arange(n_frames) / fps
        ref = np.stack([np.interp(times_out, times_in, feats[:, d]) for d in range(3)], 1)
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)

    def test_video_frames_past_the_audio_hold_the_last_row(self):
        feats = np.array([[1.0], [2.0], [3.0]])  # 3 rows at 50 Hz = 0.06 s
        seq = resample_rows(feats, 50.0, 4, 25.0)  # frames at 0, .04, .08, .12 s
        np.testing.assert_array_equal(seq[:, 0], [1, 3, 3, 3])

    def test_50hz_stride_zero_and_edge(self):
        # Row r = 1 + r at 50 Hz, 25 fps: c(t) = 2t, window 4 -> rows 2t - 2 .. 2t + 1.
        feats = (1.0 + np.arange(7, dtype=np.float32))[:, None]
        zero = frame_windows(feats, 50.0, 4, 25.0, window=4, stride="50hz", pad="zero")
        edge = frame_windows(feats, 50.0, 4, 25.0, window=4, stride="50hz", pad="edge")
        np.testing.assert_array_equal(
            zero[..., 0], [[0, 0, 1, 2], [1, 2, 3, 4], [3, 4, 5, 6], [5, 6, 7, 0]]
        )
        np.testing.assert_array_equal(
            edge[..., 0], [[1, 1, 1, 2], [1, 2, 3, 4], [3, 4, 5, 6], [5, 6, 7, 7]]
        )

    def test_50hz_stride_centres_round_to_nearest_row(self):
        np.testing.assert_array_equal(window_centres(4, 25.0, 50.0, "50hz"), [0, 2, 4, 6])
        # 30 fps: t * 5 / 3 = 0, 1.67, 3.33, 5 -> 0, 2, 3, 5
        np.testing.assert_array_equal(window_centres(4, 30.0, 50.0, "50hz"), [0, 2, 3, 5])
        np.testing.assert_array_equal(window_centres(3, 25.0, 50.0, "video"), [0, 1, 2])

    def test_50hz_frames_past_the_features_are_padding(self):
        feats = np.ones((4, 2), dtype=np.float32)
        zero = frame_windows(feats, 50.0, 5, 25.0, window=2, stride="50hz", pad="zero")
        assert np.all(zero[4] == 0)  # c = 8, rows 7, 8: both past T = 4
        edge = frame_windows(feats, 50.0, 5, 25.0, window=2, stride="50hz", pad="edge")
        assert np.all(edge[4] == 1)

    def test_default_window_is_16_with_centre_at_slot_8(self):
        feats = np.arange(1, 41, dtype=np.float32)[:, None]
        out = frame_windows(feats, 25.0, 40, 25.0)
        assert out.shape == (40, 16, 1)
        np.testing.assert_array_equal(out[20, :, 0], np.arange(13, 29))  # rows 12 .. 27
        assert out[20, 8, 0] == feats[20, 0]
        # consecutive video-stride windows shift by one row
        np.testing.assert_array_equal(out[1:, :-1], out[:-1, 1:])

    def test_zero_frames(self):
        out = frame_windows(np.ones((5, 3)), 50.0, 0, 25.0)
        assert out.shape == (0, 16, 3)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"features": np.ones(5)},
            {"features": np.ones((0, 3))},
            {"rate_hz": 0.0},
            {"fps": -1.0},
            {"window": 0},
            {"stride": "100hz"},
            {"pad": "reflect"},
        ],
    )
    def test_exceptions(self, kwargs):
        args = {"features": np.ones((5, 3)), "rate_hz": 50.0, "n_frames": 3, "fps": 25.0}
        args.update(kwargs)
        with pytest.raises(ValueError):
            frame_windows(
                args.pop("features"),
                args.pop("rate_hz"),
                args.pop("n_frames"),
                args.pop("fps"),
                **args,
            )


# --------------------------------------------------------------------------- extractors


class TestMelMfcc:
    def test_mel_shape_rate_and_envelope(self):
        ext = make_extractor(AudioFeatureConfig(name="mel"))
        assert isinstance(ext, FeatureExtractor)
        assert (ext.name, ext.dim, ext.rate_hz) == ("mel", 80, 50.0)
        audio = tone_bursts(2.0)
        feats = ext(audio)
        assert feats.shape == (1 + audio.size // 320, 80) and feats.dtype == np.float32
        assert np.isfinite(feats).all()
        energy = feats.mean(axis=1)
        loud, quiet = burst_rows(feats.shape[0])
        assert energy[loud].min() > energy[quiet].max() + 5.0
        # row r is centred at r / 50 s: the burst starting at 0.5 s (row 25)
        # is silent in row 24 (window 0.4675-0.4925 s) and loud in row 26
        assert energy[26] > energy[24] + 5.0
        np.testing.assert_allclose(energy[24], np.log(1e-6), atol=1e-3)

    def test_mel_n_mels(self):
        ext = make_extractor(AudioFeatureConfig(name="mel", n_mels=40))
        assert ext.dim == 40 and ext(tone_bursts(0.5)).shape == (26, 40)

    def test_mfcc_shape_and_envelope(self):
        ext = make_extractor(AudioFeatureConfig(name="mfcc"))
        assert (ext.dim, ext.rate_hz) == (39, 50.0)
        feats = ext(tone_bursts(2.0))
        assert feats.shape == (101, 39) and feats.dtype == np.float32
        assert np.isfinite(feats).all()
        c0 = feats[:, 0]
        loud, quiet = burst_rows(feats.shape[0])
        assert c0[loud].min() > c0[quiet].max() + 10.0
        # the deltas are time derivatives: ~0 in the middle of a burst, large at onsets
        middle, _ = burst_rows(feats.shape[0], margin=5)
        assert np.abs(feats[middle, 13]).max() < 1.0
        assert feats[25, 13] > 3.0  # onset of the burst at 0.5 s

    def test_mfcc_without_deltas_and_short_input(self):
        ext = make_extractor(AudioFeatureConfig(name="mfcc", mfcc_deltas=False, n_mfcc=20))
        assert ext.dim == 20 and ext(tone_bursts(1.0)).shape == (51, 20)
        short = make_extractor(AudioFeatureConfig(name="mfcc"))(tone_bursts(0.05))
        assert short.shape == (3, 39) and np.isfinite(short).all()

    def test_features_are_local(self):
        """A log-mel row depends on its own 25 ms only: no per-clip normalisation."""
        ext = make_extractor(AudioFeatureConfig(name="mel"))
        audio = tone_bursts(2.0)
        whole, part = ext(audio), ext(audio[: 320 * 50])
        np.testing.assert_allclose(whole[1:49], part[1:49], atol=1e-4)


@pytest.fixture(scope="module")
def whisper() -> WhisperEncoderExtractor:
    try:
        return make_extractor(AudioFeatureConfig(name="whisper"))
    except MissingDependencyError as err:
        pytest.skip(f"Whisper features unavailable: {err}")


class TestWhisper:
    def test_shape_finite_deterministic(self, whisper):
        assert (whisper.dim, whisper.rate_hz) == (384, 50.0)
        audio = tone_bursts(2.0)
        a, b = whisper(audio), whisper(audio)
        assert a.shape == (100, 384) and a.dtype == np.float32
        assert np.isfinite(a).all()
        np.testing.assert_array_equal(a, b)
        # the encoder output is not constant in time: bursts and silences differ
        loud, quiet = burst_rows(a.shape[0])
        gap = np.linalg.norm(a[loud].mean(0) - a[quiet].mean(0))
        assert gap > 0.1 * np.linalg.norm(a, axis=1).mean()

    def test_long_audio_is_processed_in_30s_chunks(self, whisper):
        rng = np.random.default_rng(0)
        audio = (0.05 * rng.standard_normal(31 * SR + 100)).astype(np.float32)
        feats = whisper(audio)
        assert feats.shape == (int(np.ceil(audio.size / 320)), 384)  # 1551 rows
        np.testing.assert_array_equal(feats[:1500], whisper(audio[: 30 * SR]))

    def test_signature_names_the_weights(self, whisper):
        sig = feature_signature(AudioFeatureConfig(name="whisper"))
        assert sig["dim"] == 384 and len(sig["model_sha256"]) == 16

    def test_missing_weights(self, tmp_path):
        with pytest.raises(MissingDependencyError, match=r"model\.bin"):
            WhisperEncoderExtractor(tmp_path)


class TestDeepSpeech:
    def test_missing_graph_or_tensorflow(self, tmp_path):
        with pytest.raises(MissingDependencyError, match=r"output_graph\.pb"):
            make_extractor(AudioFeatureConfig(name="deepspeech"))
        with pytest.raises(MissingDependencyError, match="not found"):
            make_extractor(
                AudioFeatureConfig(name="deepspeech", deepspeech_graph=str(tmp_path / "no.pb"))
            )

    def test_extractor_plumbing_with_a_stand_in_tensorflow(self, tmp_path, monkeypatch):
        """The graph loading / feeding code, run against a minimal fake of tf.compat.v1."""
        fed = {}

        class Graph:
            def as_default(self):
                return contextlib.nullcontext()

            def get_tensor_by_name(self, name):
                return name

        class GraphDef:
            def ParseFromString(self, data):
                fed["graph_bytes"] = data

        class Session:
            def __init__(self, graph):
                pass

            def run(self, fetch, feed_dict):
                x = feed_dict["deepspeech/input_node:0"]
                fed["input"], fed["lengths"] = x, feed_dict["deepspeech/input_lengths:0"]
                assert fetch == "deepspeech/logits:0"
                return x[0, :, None, :29]  # time-major (T, 1, 29)

        v1 = types.SimpleNamespace(
            Graph=Graph, GraphDef=GraphDef, Session=Session, import_graph_def=lambda g, name: None
        )
        fake_tf = types.ModuleType("tensorflow")
        fake_tf.__spec__ = importlib.machinery.ModuleSpec("tensorflow", None)
        fake_tf.compat = types.SimpleNamespace(v1=v1)
        monkeypatch.setitem(sys.modules, "tensorflow", fake_tf)
        graph = tmp_path / "output_graph.pb"
        graph.write_bytes(b"graph")

        cfg = AudioFeatureConfig(name="deepspeech", deepspeech_graph=str(graph))
        ext = make_extractor(cfg)
        audio = tone_bursts(1.0)
        logits = ext(audio)
        assert fed["graph_bytes"] == b"graph"
        assert fed["input"].shape == (1, 50, 494) and list(fed["lengths"]) == [50]
        assert logits.shape == (50, 29) and logits.dtype == np.float32
        assert (ext.dim, ext.rate_hz) == (29, 50.0)
        pcm = np.clip(audio.astype(np.float64) * 32768, -32768, 32767).astype(np.int16)
        np.testing.assert_array_equal(logits, deepspeech_input_vector(pcm)[:, :29])
        assert extract_windows(audio, SR, 25, 25.0, cfg, extractor=ext).shape == (25, 16, 29)
        assert len(feature_signature(cfg)["graph_sha256"]) == 16

    def test_input_vector_layout(self):
        pcm = (tone_bursts(1.0) * 32768).astype(np.int16)
        mfcc = speech_features_mfcc(pcm, 16000, 26)
        assert mfcc.shape == (1 + int(np.ceil((16000 - 400) / 160)), 26)  # 99 frames
        vec = deepspeech_input_vector(pcm)
        assert vec.shape == (50, 19 * 26) and vec.dtype == np.float32
        assert abs(float(vec.mean())) < 1e-5 and abs(float(vec.std()) - 1.0) < 1e-4
        # step t holds MFCC frames 2(t - 9) .. 2(t + 9) (zero beyond the ends), so
        # the centre block of step t + 1 equals block 8 of step t + 2 etc.
        blocks = vec.reshape(50, 19, 26)
        np.testing.assert_array_equal(blocks[1:, 8], blocks[:-1, 9])
        np.testing.assert_array_equal(blocks[0, :9], blocks[0, :9][0:1].repeat(9, 0))


class TestRegistry:
    def test_unknown_name_lists_known(self):
        with pytest.raises(ConfigError, match="deepspeech, mel, mfcc, whisper"):
            make_extractor(AudioFeatureConfig(name="wav2vec"))

    def test_register_custom_extractor(self, monkeypatch):
        monkeypatch.setattr("nvp.audio.features.EXTRACTORS", dict(EXTRACTORS))
        from nvp.audio import features

        class Loudness:
            name, dim, rate_hz = "loudness", 1, 100.0

            def __init__(self, cfg):
                pass

            def __call__(self, audio):
                frames = audio[: audio.size // 160 * 160].reshape(-1, 160)
                return np.sqrt((frames**2).mean(axis=1, keepdims=True)).astype(np.float32)

        features.register("loudness")(Loudness)
        cfg = AudioFeatureConfig(name="loudness", window=4)
        windows = extract_windows(tone_bursts(1.0), SR, 25, 25.0, cfg)
        assert windows.shape == (25, 4, 1)
        with pytest.raises(ValueError, match="already registered"):
            features.register("loudness")(lambda cfg: None)

    def test_register_is_exported(self):
        assert callable(register) and set(EXTRACTORS) >= {"mel", "mfcc", "whisper", "deepspeech"}


# --------------------------------------------------------------------------- extract_windows


class TestExtractWindows:
    def test_mel_windows(self):
        audio = tone_bursts(2.0)
        cfg = AudioFeatureConfig(name="mel")
        out = extract_windows(audio, SR, 50, 25.0, cfg)
        assert out.shape == (50, 16, 80) and out.dtype == np.float32
        feats = make_extractor(cfg)(audio)
        np.testing.assert_array_equal(out, frame_windows(feats, 50.0, 50, 25.0))
        # 50 Hz stride: frame t's centre slot holds row 2t
        out50 = extract_windows(audio, SR, 50, 25.0, AudioFeatureConfig(stride="50hz"))
        np.testing.assert_array_equal(out50[:, 8], feats[0:100:2])

    def test_other_sample_rates_are_resampled(self):
        audio16 = tone_bursts(2.0)
        audio44 = tone_bursts(2.0, sr=44100)
        assert prepare_audio(audio44, 44100).shape == (32000,)
        cfg = AudioFeatureConfig(name="mel")
        a = extract_windows(audio16, SR, 50, 25.0, cfg)[:, 8].mean(axis=1)
        b = extract_windows(audio44, 44100, 50, 25.0, cfg)[:, 8].mean(axis=1)
        assert np.corrcoef(a, b)[0, 1] > 0.99

    def test_int16_input(self):
        audio = tone_bursts(1.0)
        pcm = np.round(audio * 32767).astype(np.int16)
        cfg = AudioFeatureConfig(name="mel")
        a = extract_windows(audio, SR, 25, 25.0, cfg)
        b = extract_windows(pcm, SR, 25, 25.0, cfg)
        np.testing.assert_allclose(a, b, atol=1e-2)

    def test_too_short(self):
        with pytest.raises(InputError, match="too short"):
            extract_windows(tone_bursts(0.5), SR, 12, 25.0, AudioFeatureConfig())  # < 0.64 s
        with pytest.raises(InputError, match="too short"):
            extract_windows(
                tone_bursts(0.3), SR, 8, 25.0, AudioFeatureConfig(stride="50hz")
            )  # < 0.32 s
        assert extract_windows(
            tone_bursts(0.4), SR, 10, 25.0, AudioFeatureConfig(stride="50hz")
        ).shape == (10, 16, 80)

    @pytest.mark.parametrize(
        "audio",
        [np.zeros((2, 16000), np.float32), np.zeros(0, np.float32), np.full(16000, np.nan)],
    )
    def test_bad_audio(self, audio):
        with pytest.raises(InputError):
            extract_windows(audio, SR, 25, 25.0, AudioFeatureConfig())


# --------------------------------------------------------------------------- precomputed


def _write_release_layout(folder: Path, n: int, seed: int = 0) -> np.ndarray:
    """Per-frame (16, 29) float64 files named <i>.deepspeech.npy, as in the release."""
    rng = np.random.default_rng(seed)
    frames = rng.standard_normal((n, 16, 29))
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        np.save(folder / f"{i}.deepspeech.npy", frames[i])
    return frames


class TestPrecomputed:
    def test_per_frame_folder(self, tmp_path):
        frames = _write_release_layout(tmp_path / "audio_feature", 12)
        (tmp_path / "audio_feature" / "notes.txt").write_text("ignored")
        out = load_precomputed(tmp_path / "audio_feature", 12)
        assert out.shape == (12, 16, 29) and out.dtype == np.float32
        np.testing.assert_array_equal(out, frames.astype(np.float32))

    def test_stacked_file(self, tmp_path):
        frames = np.random.default_rng(1).standard_normal((7, 16, 29)).astype(np.float32)
        np.save(tmp_path / "features.npy", frames)
        np.testing.assert_array_equal(load_precomputed(tmp_path / "features.npy", 7), frames)
        assert load_precomputed(tmp_path / "features.npy", None).shape == (7, 16, 29)

    def test_frame_count_mismatch(self, tmp_path):
        _write_release_layout(tmp_path / "af", 5)
        with pytest.raises(InputError, match="5 frames but the video has 6"):
            load_precomputed(tmp_path / "af", 6)

    def test_bad_layouts(self, tmp_path):
        np.save(tmp_path / "wrong.npy", np.zeros((5, 16, 30)))
        with pytest.raises(InputError, match=r"\(N, 16, 29\)"):
            load_precomputed(tmp_path / "wrong.npy", 5)
        _write_release_layout(tmp_path / "gap", 4)
        (tmp_path / "gap" / "2.deepspeech.npy").unlink()
        with pytest.raises(InputError, match="without gaps"):
            load_precomputed(tmp_path / "gap", 3)
        _write_release_layout(tmp_path / "shape", 2)
        np.save(tmp_path / "shape" / "1.deepspeech.npy", np.zeros((8, 29)))
        with pytest.raises(InputError, match=r"\(16, 29\)"):
            load_precomputed(tmp_path / "shape", 2)
        with pytest.raises(InputError, match="not found"):
            load_precomputed(tmp_path / "absent", 2)
        (tmp_path / "empty").mkdir()
        with pytest.raises(InputError, match=r"no <i>\.deepspeech\.npy"):
            load_precomputed(tmp_path / "empty", 2)

    def test_extract_windows_uses_precomputed(self, tmp_path):
        frames = _write_release_layout(tmp_path / "af", 25)
        cfg = AudioFeatureConfig(name="deepspeech", precomputed=str(tmp_path / "af"))
        out = extract_windows(tone_bursts(1.0), SR, 25, 25.0, cfg)
        np.testing.assert_array_equal(out, frames.astype(np.float32))
        sig = feature_signature(cfg)
        assert sig["source"] == "precomputed" and (sig["window"], sig["dim"]) == (16, 29)
        with pytest.raises(ConfigError, match=r"audio\.name=deepspeech"):
            extract_windows(
                tone_bursts(1.0), SR, 25, 25.0, AudioFeatureConfig(precomputed=str(tmp_path))
            )


@pytest.mark.realdata
@pytest.mark.parametrize("sequence", ["greta", "trump"])
def test_release_features_follow_the_window_convention(sequence):
    path = RELEASE / f"{sequence}_features.npy"
    if not path.is_file():
        pytest.skip(f"{path} not found: set NVP_DATA to the folder holding nvp_release/")
    released = load_precomputed(path, None)
    n = released.shape[0]
    assert released.shape == (n, 16, 29) and released.dtype == np.float32
    with pytest.raises(InputError):
        load_precomputed(path, n + 1)
    # The video-rate logits are the centre slot; re-windowing them with the video stride,
    # window 16 and zero padding reproduces the release exactly.
    logits = released[:, 8]
    rebuilt = frame_windows(logits, 25.0, n, 25.0, window=16, stride="video", pad="zero")
    np.testing.assert_array_equal(rebuilt, released)


# --------------------------------------------------------------------------- config


class TestConfig:
    @pytest.mark.parametrize(
        "kwargs", [{"stride": "25hz"}, {"pad": "reflect"}, {"window": 0}, {"n_mfcc": 0}]
    )
    def test_invalid_values(self, kwargs):
        with pytest.raises(ConfigError):
            AudioFeatureConfig(**kwargs)

    def test_omegaconf_structured(self):
        cfg = OmegaConf.structured(AudioFeatureConfig)
        cfg = OmegaConf.merge(cfg, {"name": "mfcc", "pad": "edge"})
        ext = make_extractor(cfg)
        assert ext.dim == 39
        bad = OmegaConf.merge(OmegaConf.structured(AudioFeatureConfig), {"pad": "wrap"})
        with pytest.raises(ConfigError, match=r"audio\.pad"):
            make_extractor(bad)
        with pytest.raises(ConfigError):
            OmegaConf.to_object(bad)

    def test_feature_signature(self):
        base = feature_signature(AudioFeatureConfig(name="mfcc"))
        json.dumps(base, sort_keys=True)
        assert {"name", "dim", "rate_hz", "window", "stride", "pad", "version"} <= set(base)
        assert (base["name"], base["dim"], base["rate_hz"]) == ("mfcc", 39, 50.0)
        for change in ({"window": 8}, {"pad": "edge"}, {"stride": "50hz"}, {"n_mels": 40}):
            assert feature_signature(AudioFeatureConfig(name="mfcc", **change)) != base
