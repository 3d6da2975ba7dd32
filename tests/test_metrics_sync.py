"""The offline sync proxy: envelope, lagged correlation, known offsets on a synthetic clip."""

from __future__ import annotations

import numpy as np
import pytest

from nvp.metrics.sync import SyncProxy, audio_envelope, lagged_correlation, sync_proxy


def test_envelope_naive():
    rng = np.random.default_rng(0)
    sr, fps, n = 1000, 25.0, 20
    audio = rng.normal(size=int(sr * n / fps))
    env = audio_envelope(audio, sr, n, fps)
    for i in (0, 7, 19):
        c = i * sr / fps
        seg = audio[max(0, round(c - 20)) : round(c + 20)]
        assert env[i] == pytest.approx(np.sqrt((seg**2).mean()))


def test_lagged_correlation_naive():
    rng = np.random.default_rng(1)
    m, e = rng.normal(size=40), rng.normal(size=40)
    r = lagged_correlation(m, e, 3)
    assert r[3] == pytest.approx(np.corrcoef(m, e)[0, 1])
    assert r[5] == pytest.approx(np.corrcoef(m[:-2], e[2:])[0, 1])  # lag +2
    assert r[0] == pytest.approx(np.corrcoef(m[3:], e[:-3])[0, 1])  # lag -3


@pytest.mark.parametrize("k", [-3, 0, 2])
def test_known_offset_on_synthetic_clip(k):
    """Audio whose envelope is the mouth opening, delayed by k frames -> best lag k."""
    from nvp.io.synthetic import mouth_opening, speech_audio

    fps, sr, seconds = 25.0, 16000, 6.0
    n = int(seconds * fps)
    mouth = mouth_opening(np.arange(n) / fps, seconds=seconds, seed=4)
    audio = speech_audio(seconds, sr, seed=4)
    shift = round(k * sr / fps)
    delayed = np.roll(audio, shift)
    if shift > 0:
        delayed[:shift] = 0
    elif shift < 0:
        delayed[shift:] = 0
    lag, r, curve = sync_proxy(mouth, delayed, sr, fps, max_lag=5)
    assert lag == k and r > 0.8
    assert np.nanmax(np.delete(curve, k + 5)) < r


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_unrelated_speech_scores_low(seed):
    """The proxy must not find sync where there is none: the same mouth against another
    clip's speech (same syllable statistics, other timing) stays far below a synced pair."""
    from nvp.io.synthetic import mouth_opening, speech_audio

    fps, sr, seconds = 25.0, 16000, 6.0
    mouth = mouth_opening(np.arange(int(seconds * fps)) / fps, seconds=seconds, seed=4)
    _, r_synced, _ = sync_proxy(mouth, speech_audio(seconds, sr, seed=4), sr, fps, max_lag=5)
    _, r, curve = sync_proxy(mouth, speech_audio(seconds, sr, seed=seed), sr, fps, max_lag=5)
    assert r < 0.45 < r_synced and np.nanmax(np.abs(curve)) < 0.45


def test_metric_accumulates():
    m = SyncProxy(max_lag=2)
    t = np.arange(100)
    mouth = np.sin(t / 3.0) + 1.5
    sr, fps = 1000, 25.0
    audio = np.repeat(mouth, int(sr / fps)) * np.sin(np.arange(100 * 40) * 0.9)
    m.update(mouth, audio, sr, fps)
    out = m.compute()
    assert out["lag"] == 0 and out["r"] > 0.9


def test_silence_is_nan():
    rng = np.random.default_rng(0)
    lag, r, _ = sync_proxy(rng.random(30), np.zeros(30 * 640), 16000, 25.0)
    assert lag == 0 and np.isnan(r)


class TestMouthLandmarkDistance:
    def test_naive_and_invariance(self):
        import torch

        from nvp.metrics.landmarks import DLIB68, MouthLandmarkDistance

        g = torch.Generator().manual_seed(0)
        tgt = torch.rand(3, 68, 2, generator=g) * 100
        pred = tgt + torch.randn(3, 68, 2, generator=g)
        m = MouthLandmarkDistance(DLIB68)
        m.update(pred, tgt)
        ref = np.mean(
            [
                np.mean([float((pred[b, i] - tgt[b, i]).norm()) for i in range(48, 68)])
                / float((tgt[b, 36] - tgt[b, 45]).norm())
                for b in range(3)
            ]
        )
        assert float(m.compute()) == pytest.approx(ref, rel=1e-5)
        scaled = MouthLandmarkDistance(DLIB68)
        scaled.update(pred * 3, tgt * 3)  # relative LMD does not depend on the image scale
        assert float(scaled.compute()) == pytest.approx(ref, rel=1e-5)
        px = MouthLandmarkDistance(DLIB68, relative=False)
        px.update(pred * 3, tgt * 3)
        ref_px = np.mean(
            [
                np.mean([float((pred[b, i] - tgt[b, i]).norm()) for i in range(48, 68)])
                for b in range(3)
            ]
        )
        assert float(px.compute()) == pytest.approx(3 * ref_px, rel=1e-5)

    def test_identical_is_zero_and_bad_shapes(self):
        import torch

        from nvp.metrics.landmarks import MouthLandmarkDistance, mediapipe_layout

        lm = torch.rand(2, 468, 3) * 50
        m = MouthLandmarkDistance(mediapipe_layout())
        m.update(lm, lm)
        assert float(m.compute()) == 0.0
        with pytest.raises(ValueError, match="landmarks"):
            m.update(lm[:, :, :1], lm[:, :, :1])
