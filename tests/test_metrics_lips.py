"""Lip-motion measures: lag correlation, amplitude, open/closed, bilabial closure, LVE, FDD,
the summary, the curve plot and the mouth strip, on known constructions and naive loops."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from nvp.metrics.lips import (
    amplitude_ratio,
    bilabial_closure_rate,
    face_dynamics_deviation,
    lag_correlation,
    lip_motion_summary,
    lip_vertex_error,
    mouth_boxes_from_landmarks,
    mouth_strip,
    open_closed_fractions,
    plot_opening_curves,
)

FPS = 25.0


def smooth_curve(n: int = 200, seed: int = 0) -> np.ndarray:
    """A speech-like opening (mm): smoothed noise, non-negative, not periodic."""
    rng = np.random.default_rng(seed)
    x = np.convolve(rng.normal(size=n + 8), np.ones(5) / 5, mode="valid")[:n]
    return 6.0 + 4.0 * x


def naive_r(pred: np.ndarray, real: np.ndarray, lag: int) -> float:
    """corr(pred[t + lag], real[t]) by an explicit loop over t, NaN pairs dropped."""
    a, b = [], []
    for t in range(len(real)):
        if 0 <= t + lag < len(pred) and np.isfinite(pred[t + lag]) and np.isfinite(real[t]):
            a.append(pred[t + lag])
            b.append(real[t])
    return float(np.corrcoef(a, b)[0, 1])


class TestLagCorrelation:
    def test_smoke(self):
        out = lag_correlation(smooth_curve(), smooth_curve(seed=1), max_lag=4)
        assert out["lags"] == list(range(-4, 5))
        assert len(out["r"]) == 9
        assert out["r0"] == out["r"][4]
        assert out["n_frames"] == 200
        json.dumps(out)

    def test_exception(self):
        with pytest.raises(ValueError, match="same number of frames"):
            lag_correlation(np.zeros(20), np.zeros(21))
        with pytest.raises(ValueError, match="1-D"):
            lag_correlation(np.zeros((20, 2)), np.zeros((20, 2)))
        with pytest.raises(ValueError, match="at least 8"):
            lag_correlation(np.arange(7.0), np.arange(7.0), max_lag=5)
        with pytest.raises(ValueError, match="max_lag"):
            lag_correlation(np.arange(20.0), np.arange(20.0), max_lag=-1)

    def test_against_naive(self):
        real = smooth_curve(seed=2)
        pred = 0.3 * real + np.random.default_rng(3).normal(size=len(real))
        out = lag_correlation(pred, real, max_lag=3)
        for lag, r in zip(out["lags"], out["r"]):
            assert r == pytest.approx(naive_r(pred, real, lag), abs=1e-12)

    @pytest.mark.parametrize("shift", [3, -2])
    def test_known_shift(self, shift):
        """pred[t] = real[t - shift]: the prediction is ``shift`` frames late -> best lag +shift."""
        real = smooth_curve(seed=4)
        pred = np.full_like(real, np.nan)
        if shift > 0:
            pred[shift:] = real[:-shift]
        else:
            pred[:shift] = real[-shift:]
        out = lag_correlation(pred, real, max_lag=5)
        assert out["best_lag"] == shift
        assert out["r_best"] == pytest.approx(1.0, abs=1e-12)
        assert out["r0"] < 0.95
        assert out["n_frames"] == len(real) - abs(shift)

    def test_nan_ignored_pairwise(self):
        real = smooth_curve(seed=5)
        pred = 2.0 * real + 1.0
        pred[[3, 50, 51]] = np.nan
        real_nan = real.copy()
        real_nan[[10, 120]] = np.nan
        out = lag_correlation(pred, real_nan, max_lag=2)
        assert out["r0"] == pytest.approx(1.0, abs=1e-12)
        assert out["best_lag"] == 0
        assert out["n_frames"] == len(real) - 5
        assert out["r"][0] == pytest.approx(naive_r(pred, real_nan, -2), abs=1e-12)

    def test_undefined(self):
        out = lag_correlation(np.ones(30), smooth_curve(30), max_lag=2)
        assert all(math.isnan(r) for r in out["r"])
        assert math.isnan(out["best_lag"]) and math.isnan(out["r_best"])


class TestAmplitudeRatio:
    def test_smoke(self):
        out = amplitude_ratio(smooth_curve(), smooth_curve(seed=1))
        assert set(out) >= {"std_ratio", "range_ratio", "pred_std", "real_std", "n_frames"}
        json.dumps(out)

    def test_exception(self):
        with pytest.raises(ValueError, match="same number of frames"):
            amplitude_ratio(np.zeros(10), np.zeros(9))
        with pytest.raises(ValueError, match="at least 2"):
            amplitude_ratio(np.zeros(1), np.zeros(1))
        with pytest.raises(ValueError, match="low_q"):
            amplitude_ratio(np.zeros(10), np.zeros(10), low_q=95, high_q=5)

    def test_half_amplitude_sine(self):
        t = np.arange(250) / FPS
        real = 5.0 + 3.0 * np.sin(2 * np.pi * 1.3 * t)
        pred = 2.0 + 0.5 * (real - 5.0)  # same shape, half the amplitude, other offset
        out = amplitude_ratio(pred, real)
        assert out["std_ratio"] == pytest.approx(0.5, rel=1e-12)
        assert out["range_ratio"] == pytest.approx(0.5, rel=1e-12)
        assert out["real_std"] == pytest.approx(3.0 / math.sqrt(2), rel=1e-2)

    def test_against_naive_with_nan(self):
        rng = np.random.default_rng(6)
        real, pred = rng.normal(size=80), 3.0 * rng.normal(size=80)
        real[[1, 2]] = np.nan
        pred[[2, 40]] = np.nan
        keep = [i for i in range(80) if i not in (1, 2, 40)]
        p, r = pred[keep], real[keep]
        out = amplitude_ratio(pred, real)
        assert out["n_frames"] == 77
        assert out["std_ratio"] == pytest.approx(p.std() / r.std())
        rng_p = np.percentile(p, 95) - np.percentile(p, 5)
        rng_r = np.percentile(r, 95) - np.percentile(r, 5)
        assert out["range_ratio"] == pytest.approx(rng_p / rng_r)

    def test_constant_real_is_nan(self):
        out = amplitude_ratio(smooth_curve(20), np.ones(20))
        assert math.isnan(out["std_ratio"]) and math.isnan(out["range_ratio"])
        assert out["pred_std"] > 0


class TestOpenClosedFractions:
    def test_smoke(self):
        out = open_closed_fractions(smooth_curve(), smooth_curve(seed=1))
        assert out["closed_level"] < out["open_level"]
        json.dumps(out)

    def test_exception(self):
        with pytest.raises(ValueError, match="closed_q"):
            open_closed_fractions(np.zeros(10), np.zeros(10), closed_q=90, open_q=10)
        with pytest.raises(ValueError, match="1-D"):
            open_closed_fractions(np.zeros((3, 3)), np.zeros(10))

    def test_levels_and_fractions(self):
        ref = np.linspace(0.0, 1.0, 101)  # percentiles are exact: q10 = 0.1, q90 = 0.9
        out = open_closed_fractions(ref, ref)
        assert out["closed_level"] == pytest.approx(0.1)
        assert out["open_level"] == pytest.approx(0.9)
        assert out["ref_closed_fraction"] == pytest.approx(11 / 101)
        assert out["ref_open_fraction"] == pytest.approx(11 / 101)
        assert out["closed_fraction"] == out["ref_closed_fraction"]
        # a damped curve: never as closed or as open as the reference
        damped = 0.25 + 0.5 * ref
        out = open_closed_fractions(damped, ref)
        assert out["closed_fraction"] == 0.0 and out["open_fraction"] == 0.0
        assert out["ref_closed_fraction"] == pytest.approx(11 / 101)
        # a curve that sits closed half the time, different length
        curve = np.r_[np.zeros(30), np.full(30, 0.5)]
        out = open_closed_fractions(curve, ref)
        assert out["closed_fraction"] == pytest.approx(0.5)
        assert out["open_fraction"] == 0.0
        assert out["n_frames"] == 60 and out["n_ref_frames"] == 101

    def test_nan_ignored(self):
        ref = np.linspace(0.0, 1.0, 101)
        ref_nan = np.r_[ref, np.nan, np.nan]
        curve = np.r_[np.zeros(10), np.ones(10), [np.nan] * 5]
        out = open_closed_fractions(curve, ref_nan)
        assert out["closed_level"] == pytest.approx(0.1)
        assert out["closed_fraction"] == pytest.approx(0.5)
        assert out["open_fraction"] == pytest.approx(0.5)
        assert out["n_frames"] == 20 and out["n_ref_frames"] == 101
        out = open_closed_fractions(curve, np.full(5, np.nan))
        assert math.isnan(out["closed_level"]) and math.isnan(out["closed_fraction"])


def dipped_opening(n: int, dips: list[int]) -> np.ndarray:
    """Open (5 mm) everywhere but 0 mm at the ``dips`` frames."""
    o = np.full(n, 5.0)
    o[dips] = 0.0
    return o


class TestBilabialClosureRate:
    # four bilabials; frame ranges (floor(start·25), ceil(end·25)): 10-12, 30-33, 50-52, 70-72
    SEGMENTS = ((0.40, 0.48), (1.20, 1.32), (2.00, 2.08), (2.80, 2.88))

    def test_smoke(self):
        out = bilabial_closure_rate(dipped_opening(100, [11]), self.SEGMENTS, FPS, 1.0)
        assert out["n_segments"] == 4 and len(out["closed"]) == 4
        json.dumps(out)

    def test_exception(self):
        o = dipped_opening(100, [11])
        with pytest.raises(ValueError, match="fps"):
            bilabial_closure_rate(o, self.SEGMENTS, 0.0, 1.0)
        with pytest.raises(ValueError, match="tolerance"):
            bilabial_closure_rate(o, self.SEGMENTS, FPS, 1.0, tolerance=-1)
        with pytest.raises(ValueError, match="start_s <= end_s"):
            bilabial_closure_rate(o, [(1.0, 0.5)], FPS, 1.0)
        with pytest.raises(ValueError, match="1-D"):
            bilabial_closure_rate(o[None], self.SEGMENTS, FPS, 1.0)

    def test_three_of_four(self):
        o = dipped_opening(100, [11, 31, 71])  # no dip in the third segment
        out = bilabial_closure_rate(o, self.SEGMENTS, FPS, closed_level=1.0)
        assert out["rate"] == pytest.approx(0.75)
        assert out["closed"] == [True, True, False, True]
        assert (out["n_evaluated"], out["n_closed"]) == (4, 3)
        # a higher threshold counts the open frames as closed too
        assert bilabial_closure_rate(o, self.SEGMENTS, FPS, closed_level=5.0)["rate"] == 1.0

    @pytest.mark.parametrize("dip", [13, 9])  # one frame after the end / before the start
    def test_tolerance(self, dip):
        o = dipped_opening(100, [dip])
        seg = [self.SEGMENTS[0]]
        assert bilabial_closure_rate(o, seg, FPS, 1.0, tolerance=1)["closed"] == [True]
        assert bilabial_closure_rate(o, seg, FPS, 1.0, tolerance=0)["closed"] == [False]
        o = dipped_opening(100, [dip + 1 if dip > 12 else dip - 1])  # two frames away
        assert bilabial_closure_rate(o, seg, FPS, 1.0, tolerance=1)["closed"] == [False]

    def test_outside_and_no_face(self):
        o = dipped_opening(60, [11, 31])
        o[48:55] = np.nan  # no face around the third segment (frames 50-52 ± 1)
        segs = [*self.SEGMENTS, (5.0, 5.1)]  # frames 70-72 and 125-128 lie past frame 59
        out = bilabial_closure_rate(o, segs, FPS, 1.0)
        assert out["closed"] == [True, True, None, None, None]
        assert (out["n_outside"], out["n_no_face"], out["n_evaluated"]) == (2, 1, 2)
        assert out["rate"] == 1.0
        empty = bilabial_closure_rate(o, [], FPS, 1.0)
        assert empty["n_segments"] == 0 and math.isnan(empty["rate"])

    def test_tolerance_window_reaching_into_curve(self):
        """A segment just past the end is outside even if its tolerance window would reach in."""
        o = dipped_opening(50, [49])
        out = bilabial_closure_rate(o, [(2.0, 2.1)], FPS, 1.0, tolerance=2)  # frames 50-53
        assert out["closed"] == [None] and out["n_outside"] == 1


class TestLipVertexError:
    @staticmethod
    def naive(pred, real, idx, squared=False):
        per_frame = []
        for t in range(len(pred)):
            errs = []
            for v in idx:
                d = math.sqrt(sum((pred[t, v, c] - real[t, v, c]) ** 2 for c in range(3)))
                errs.append(d * d if squared else d)
            per_frame.append(max(errs))
        return sum(per_frame) / len(per_frame)

    def test_smoke(self):
        v = np.random.default_rng(0).normal(size=(4, 10, 3))
        assert lip_vertex_error(v, v, [1, 2]) == 0.0

    def test_exception(self):
        v = np.zeros((4, 10, 3))
        with pytest.raises(ValueError, match="same shape"):
            lip_vertex_error(v, np.zeros((5, 10, 3)), [1])
        with pytest.raises(ValueError, match=r"\(N, V, 3\)"):
            lip_vertex_error(np.zeros((4, 10)), np.zeros((4, 10)), [1])
        with pytest.raises(ValueError, match="out of range"):
            lip_vertex_error(v, v, [10])
        with pytest.raises(ValueError, match="lip_index"):
            lip_vertex_error(v, v, [])

    @pytest.mark.parametrize("squared", [False, True])
    def test_against_naive(self, squared):
        rng = np.random.default_rng(7)
        real = rng.normal(size=(6, 20, 3)) * 10
        pred = real + rng.normal(size=real.shape)
        idx = [0, 3, 4, 11, 19]
        got = lip_vertex_error(pred, real, idx, squared=squared)
        assert got == pytest.approx(self.naive(pred, real, idx, squared))
        # only the lip vertices matter
        pred2 = pred.copy()
        pred2[:, 5] += 100.0
        assert lip_vertex_error(pred2, real, idx, squared=squared) == pytest.approx(got)

    def test_nan_frames_dropped(self):
        rng = np.random.default_rng(8)
        real = rng.normal(size=(6, 8, 3))
        pred = real + rng.normal(size=real.shape)
        pred_nan = pred.copy()
        pred_nan[2, 1, 0] = np.nan  # a lip vertex: frame 2 is dropped
        pred_nan[4, 7, 2] = np.nan  # not a lip vertex: frame 4 stays
        keep = [0, 1, 3, 4, 5]
        got = lip_vertex_error(pred_nan, real, [0, 1, 2])
        assert got == pytest.approx(self.naive(pred[keep], real[keep], [0, 1, 2]))


class TestFaceDynamicsDeviation:
    @staticmethod
    def naive(pred, real, idx, template, squared):
        """CodeTalker's evaluation: std over time of the per-vertex (squared) motion norm."""

        def motion_std(x):
            stds = []
            for v in idx:
                m = [float(np.linalg.norm(x[t, v] - template[v])) for t in range(len(x))]
                stds.append(float(np.std(np.square(m) if squared else m)))
            return float(np.mean(stds))

        return motion_std(real) - motion_std(pred)

    def test_smoke(self):
        v = np.random.default_rng(0).normal(size=(10, 12, 3))
        assert face_dynamics_deviation(v, v, [0, 5, 6]) == 0.0
        assert face_dynamics_deviation(v, v, [0, 5, 6], template=v[0], squared=True) == 0.0

    def test_exception(self):
        v = np.zeros((4, 10, 3))
        with pytest.raises(ValueError, match="same shape"):
            face_dynamics_deviation(v, np.zeros((4, 11, 3)), [1])
        with pytest.raises(ValueError, match="template"):
            face_dynamics_deviation(v, v, [1], template=np.zeros((9, 3)))

    def test_scaled_motion(self):
        """Motion damped to half about the mean: FDD = half of the real motion's std (> 0)."""
        rng = np.random.default_rng(9)
        rest = rng.normal(size=(1, 15, 3)) * 50
        real = rest + rng.normal(size=(40, 15, 3))
        mean = real.mean(0, keepdims=True)
        pred = mean + 0.5 * (real - mean)
        idx = [2, 3, 7, 14]
        real_std = float(np.linalg.norm(real - mean, axis=-1)[:, idx].std(0).mean())
        fdd = face_dynamics_deviation(pred, real, idx)
        assert fdd == pytest.approx(0.5 * real_std, rel=1e-10)
        assert fdd > 0
        # exaggerated motion: negative
        assert face_dynamics_deviation(mean + 2.0 * (real - mean), real, idx) == pytest.approx(
            -real_std, rel=1e-10
        )
        # squared norms scale by 0.25: FDD = 0.75 of the real squared-motion std
        real_std2 = float(((real - mean) ** 2).sum(-1)[:, idx].std(0).mean())
        fdd2 = face_dynamics_deviation(pred, real, idx, squared=True)
        assert fdd2 == pytest.approx(0.75 * real_std2, rel=1e-10)

    @pytest.mark.parametrize("squared", [False, True])
    def test_template_against_naive(self, squared):
        rng = np.random.default_rng(10)
        template = rng.normal(size=(12, 3)) * 30
        real = template + rng.normal(size=(25, 12, 3))
        pred = template + 0.7 * rng.normal(size=(25, 12, 3))
        idx = [0, 1, 5, 9]
        got = face_dynamics_deviation(pred, real, idx, template=template, squared=squared)
        assert got == pytest.approx(self.naive(pred, real, idx, template, squared), rel=1e-10)

    def test_nan_and_short(self):
        rng = np.random.default_rng(11)
        real = rng.normal(size=(8, 6, 3))
        pred = 0.5 * real
        pred_nan = pred.copy()
        pred_nan[3, 2, 1] = np.nan
        keep = [0, 1, 2, 4, 5, 6, 7]
        got = face_dynamics_deviation(pred_nan, real, [1, 2])
        assert got == pytest.approx(face_dynamics_deviation(pred[keep], real[keep], [1, 2]))
        assert math.isnan(face_dynamics_deviation(pred[:1], real[:1], [1, 2]))


class TestLipMotionSummary:
    KEYS = frozenset(
        {
            "n_frames",
            "n_valid",
            "r0",
            "best_lag",
            "r_best",
            "std_ratio",
            "range_ratio",
            "closed_level",
            "open_level",
            "closed_fraction",
            "open_fraction",
            "ref_closed_fraction",
            "ref_open_fraction",
        }
    )

    def test_smoke_json(self):
        out = lip_motion_summary(smooth_curve(), smooth_curve(seed=1))
        assert set(out) == self.KEYS
        assert all(type(v) in (int, float) for v in out.values())
        assert json.loads(json.dumps(out)) == pytest.approx(out)

    def test_exception(self):
        with pytest.raises(ValueError, match="same number of frames"):
            lip_motion_summary(np.zeros(30), np.zeros(31))
        with pytest.raises(ValueError, match="at least"):
            lip_motion_summary(np.zeros(6), np.zeros(6), max_lag=5)

    def test_values(self):
        """Damped by half and 2 frames late, 4 frames without a face."""
        real = smooth_curve(250, seed=12)
        pred = np.full_like(real, np.nan)
        pred[2:] = 3.0 + 0.5 * real[:-2]  # same mean (6 mm), half the motion
        real_nan = real.copy()
        real_nan[[100, 101, 102, 103]] = np.nan
        out = lip_motion_summary(pred, real_nan, max_lag=4)
        assert out["n_frames"] == 250 and out["n_valid"] == 244
        assert out["best_lag"] == 2 and out["r_best"] == pytest.approx(1.0)
        assert 0.3 < out["std_ratio"] < 0.7  # the 2-frame shift changes the frames a little
        ok = np.isfinite(pred) & np.isfinite(real_nan)
        amp = amplitude_ratio(pred, real_nan)
        assert out["std_ratio"] == pytest.approx(amp["std_ratio"])
        frac = open_closed_fractions(pred[ok], real_nan[ok])
        assert out["closed_fraction"] == frac["closed_fraction"]
        assert out["ref_closed_fraction"] == pytest.approx(0.1, abs=0.01)
        assert out["ref_open_fraction"] == pytest.approx(0.1, abs=0.01)
        # the damped prediction never reaches the real closed / open levels
        assert out["closed_fraction"] < 0.05 and out["open_fraction"] < 0.05


class TestPlotOpeningCurves:
    def test_writes_png(self, tmp_path):
        real = smooth_curve(100)
        pred = real.copy()
        pred[10:20] = np.nan
        path = plot_opening_curves(
            tmp_path / "sub" / "opening.png",
            {"tracked": real, "audio-driven": pred[:90]},
            FPS,
            title="clip",
            ylabel="inner-lip distance (mm)",
        )
        assert path == tmp_path / "sub" / "opening.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert [p.name for p in path.parent.iterdir()] == ["opening.png"]  # no temp left

    def test_replaces(self, tmp_path):
        path = tmp_path / "o.png"
        path.write_bytes(b"old")
        plot_opening_curves(path, {"a": smooth_curve(30)}, FPS)
        assert path.read_bytes()[:4] == b"\x89PNG"

    def test_exception(self, tmp_path):
        with pytest.raises(ValueError, match="empty"):
            plot_opening_curves(tmp_path / "x.png", {}, FPS)
        with pytest.raises(ValueError, match="fps"):
            plot_opening_curves(tmp_path / "x.png", {"a": np.zeros(3)}, 0)
        assert not (tmp_path / "x.png").exists()


class TestMouthBoxes:
    def test_square_around_lips(self):
        lm = np.zeros((2, 5, 3))
        lm[:, 3:, :2] = [[[40, 50], [60, 56]], [[40, 50], [60, 56]]]  # lips: width 20
        box = mouth_boxes_from_landmarks(lm, [3, 4], margin=0.5)
        np.testing.assert_allclose(box[0], [30, 33, 70, 73])  # centre (50, 53), side 40
        assert np.all(box[:, 2] - box[:, 0] == box[:, 3] - box[:, 1])

    def test_clipped_to_image(self):
        lm = np.array([[[2.0, 10.0], [22.0, 14.0]]])  # near the left edge
        box = mouth_boxes_from_landmarks(lm, [0, 1], margin=0.5, image_size=(100, 200))
        np.testing.assert_allclose(box[0], [0, 0, 40, 40])  # [-8, -8, 32, 32] moved in
        lm = np.array([[[0.0, 0.0], [150.0, 10.0]]])  # wider than the image is high
        box = mouth_boxes_from_landmarks(lm, [0, 1], margin=0.0, image_size=(100, 200))
        np.testing.assert_allclose(box[0], [0, 0, 150, 100])  # side 150: moved, then clipped

    def test_nan_and_exception(self):
        lm = np.ones((3, 4, 2)) * np.arange(4)[None, :, None]
        lm[1, 2] = np.nan
        box = mouth_boxes_from_landmarks(lm, [1, 2])
        assert np.isnan(box[1]).all() and np.isfinite(box[[0, 2]]).all()
        with pytest.raises(ValueError, match=r"\(N, L, 2\|3\)"):
            mouth_boxes_from_landmarks(np.zeros((3, 4)), [0, 1])


class TestMouthStrip:
    @staticmethod
    def frames(n: int = 60, size: int = 96) -> np.ndarray:
        f = np.zeros((n, size, size, 3), np.uint8)
        for i in range(n):
            f[i, :, :, 0] = i  # frame number in the red channel
            f[i, 40:60, 30:70, 1] = 200  # a green "mouth"
        return f

    def test_shape_and_content(self):
        f = self.frames()
        boxes = np.tile([30.0, 40.0, 70.0, 60.0], (60, 1))
        strip = mouth_strip(f, boxes, every=1, max_tiles=50, tile=16)
        assert strip.shape == (2 * 16, 25 * 16, 3) and strip.dtype == np.uint8
        assert strip[0, 3 * 16 + 5, 0] == 3  # tile 3 is frame 3
        assert strip[16 + 2, 4 * 16 + 2, 0] == 29  # second row starts at frame 25
        assert strip[16:, 0:16, 1].min() == 200  # the crop is the mouth
        assert strip[16:, -16:, 0].min() == 49  # max_tiles: the last tile is frame 49
        strip = mouth_strip(f, boxes, every=4, max_tiles=50, tile=8)  # 15 tiles
        assert strip.shape == (8, 15 * 8, 3)
        assert strip[0, 2 * 8 + 1, 0] == 8  # tile 2 is frame 8

    def test_black_for_missing_boxes(self):
        f = self.frames(4)
        boxes = np.tile([30.0, 40.0, 70.0, 60.0], (4, 1))
        boxes[1] = np.nan
        boxes[2] = [200, 200, 240, 240]  # outside the frame
        strip = mouth_strip(f, boxes, tile=10)
        assert strip.shape == (10, 40, 3)
        assert strip[:, 10:30].max() == 0 and strip[:, 30:40, 1].min() == 200

    def test_exception(self):
        f = self.frames(4)
        with pytest.raises(ValueError, match="mouth_boxes"):
            mouth_strip(f, np.zeros((3, 4)))
        with pytest.raises(ValueError, match="uint8"):
            mouth_strip(f.astype(np.float32), np.zeros((4, 4)))
        with pytest.raises(ValueError, match="every"):
            mouth_strip(f, np.zeros((4, 4)), every=0)
