"""Lip motion: the target fit's offset and gain, sampling shares, sequence offsets, and the
evaluation's lip-motion measures (self-reenactment, cross-speaker, ablation rows)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from nvp.a2e.data import BalancedSampler
from nvp.a2e.target import lip_gain, load_mapping, solve_mapping
from nvp.errors import InputError
from nvp.reenact.lips import (
    _against_distribution,
    audio_files,
    closures,
    fill_nan,
    mouth_opening_2d,
    proxy_reliability,
)
from nvp.tracking import topology
from nvp.tracking.face_model import FaceModel


@pytest.fixture(scope="module")
def face_model(a2e_dataset) -> FaceModel:
    return FaceModel.load(a2e_dataset / "face_model.npz")


class TestLipGain:
    def test_matches_naive_vertex_variance(self, face_model):
        rng = np.random.default_rng(0)
        K = face_model.n_components
        target = rng.normal(size=(200, K)) * 3
        pred = 0.4 * target + 0.1 * rng.normal(size=(200, K))
        target -= target.mean(0)
        pred -= pred.mean(0)
        g = lip_gain(pred, target, face_model, max_gain=10.0)
        lips = topology.lip_vertices()
        B = face_model.basis[lips]  # (L, 3, K)

        def energy(e):
            return sum(float(np.sum((B @ x) ** 2)) for x in e)

        assert g == pytest.approx(math.sqrt(energy(target) / energy(pred)), rel=1e-4)
        assert g > 1.5  # the shrunk prediction is scaled up

    def test_bounds(self, face_model):
        K = face_model.n_components
        e = np.random.default_rng(1).normal(size=(50, K))
        assert lip_gain(e * 0.01, e, face_model, max_gain=3.0) == 3.0  # capped
        assert lip_gain(e * 2.0, e, face_model, max_gain=3.0) == 1.0  # never shrinks
        assert lip_gain(np.zeros_like(e), e, face_model, max_gain=3.0) == 1.0  # no motion


def test_solve_mapping_with_intercept_recovers_offset():
    """Centred least squares + offset reproduce an affine relation exactly (no ridge)."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 8)) + 5.0  # inputs far from zero
    M_true = rng.normal(size=(4, 8))
    off_true = np.array([10.0, -3.0, 0.5, 7.0])
    e = x @ M_true.T + off_true
    xm, em = x.mean(0), e.mean(0)
    M = solve_mapping(x - xm, e - em, ridge=0.0)
    np.testing.assert_allclose(M, M_true, atol=1e-8)
    np.testing.assert_allclose(em - M @ xm, off_true, atol=1e-8)


def test_mapping_file_offset_round_trip_and_old_files(tmp_path):
    M = np.ones((5, 32), np.float32)
    off = np.arange(5, dtype=np.float32)
    p = tmp_path / "m.npz"
    np.savez(p, mapping=M, offset=off, meta=np.array(json.dumps({"a2e_hash": "x"})))
    M2, off2, meta = load_mapping(p)
    np.testing.assert_array_equal(M2, M)
    np.testing.assert_array_equal(off2, off)
    assert meta == {"a2e_hash": "x"}
    old = tmp_path / "old.npz"  # written before offsets existed: zeros
    np.savez(old, mapping=M, meta=np.array("{}"))
    _, off3, _ = load_mapping(old)
    np.testing.assert_array_equal(off3, np.zeros(5))
    bad = tmp_path / "bad.npz"
    np.savez(bad, mapping=M, offset=np.zeros(3), meta=np.array("{}"))
    with pytest.raises(InputError, match="offset"):
        load_mapping(bad)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match=r"junk\.npz"):
        load_mapping(tmp_path / "junk.npz")


@pytest.mark.parametrize(
    ("weighting", "expected"),
    [("uniform", [0.5, 0.5]), ("frames", [0.1, 0.9]), ("sqrt", [0.25, 0.75])],
)
def test_sampler_sequence_shares(weighting, expected):
    """Sequence 0 has 10 items, sequence 1 has 90: shares uniform / by frames / by sqrt."""
    seq = np.array([0] * 10 + [1] * 90)
    s = BalancedSampler(seq, 20000, seed=0, weighting=weighting)
    share = np.bincount(seq[list(s)], minlength=2) / 20000
    if weighting == "sqrt":
        expected = [math.sqrt(10) / (math.sqrt(10) + math.sqrt(90))] * 1
        expected.append(1 - expected[0])
    np.testing.assert_allclose(share, expected, atol=0.015)
    with pytest.raises(ValueError, match="weighting"):
        BalancedSampler(seq, 10, weighting="by_length")


def test_sequence_offsets_added_to_every_prediction(a2e_dataset):
    from omegaconf import OmegaConf

    from nvp.a2e.config import A2EConfig
    from nvp.a2e.data import A2EDataModule
    from nvp.a2e.module import Audio2ExpressionModule
    from nvp.a2e.train import dataset_feature_shape
    from nvp.config import load

    _, w, d = dataset_feature_shape(a2e_dataset)
    dims = [f"net.feature_dim={d}", f"net.window={w}"]
    cfg = load(A2EConfig, "a2e/tiny.yaml", cli=["sequence_offset=true", *dims])
    c = OmegaConf.to_object(cfg)
    dm = A2EDataModule(a2e_dataset, c.data, c.net)
    K = dm.face_model.n_components
    means = dm.mean_expressions()
    mod = Audio2ExpressionModule(
        OmegaConf.to_container(cfg),
        n_sequences=dm.n_sequences,
        expression_dim=K,
        face_model=dm.face_model,
        identities=dm.identities,
        mean_expressions=means,
    )
    with torch.no_grad():
        mod.net.mapping.zero_()  # the maps add nothing: the prediction is the offset
    n = cfg.net.seq_len + 2
    w = torch.randn(2, n, cfg.net.window, cfg.net.feature_dim)
    expr, inter, _ = mod.predict_triplet(w, torch.tensor([0, 2]))
    off = torch.as_tensor(means[[0, 2]], dtype=torch.float32)
    torch.testing.assert_close(expr, off[:, None].expand(2, 3, K))
    torch.testing.assert_close(inter, off)
    # the offsets are the training split's mean expression of each store
    from nvp.data.store import SequenceStore

    s0 = SequenceStore(dm.paths[0])
    a, b = s0.split_range("train")
    np.testing.assert_allclose(
        means[0], np.asarray(s0["expression"][a:b]).mean(0), rtol=1e-4, atol=1e-4
    )
    # off by default: zeros
    plain = load(A2EConfig, "a2e/tiny.yaml", cli=dims)
    m2 = Audio2ExpressionModule(
        OmegaConf.to_container(plain),
        n_sequences=dm.n_sequences,
        expression_dim=K,
        mean_expressions=means,
    )
    assert float(m2.sequence_offsets.abs().sum()) == 0.0


class TestDistributionMeasures:
    def test_against_distribution(self):
        rng = np.random.default_rng(3)
        ref = rng.normal(5.0, 2.0, 5000)
        cur = rng.normal(5.0, 1.0, 3000)  # other length, half the spread
        r = _against_distribution(cur, ref)
        assert r["std_ratio"] == pytest.approx(0.5, abs=0.03)
        assert r["range_ratio"] == pytest.approx(0.5, abs=0.04)
        # half the spread: fewer frames beyond the reference's 10th / 90th percentiles
        assert r["closed_fraction"] < 0.05 and r["open_fraction"] < 0.05
        same = _against_distribution(ref, ref)
        assert same["closed_fraction"] == pytest.approx(0.1, abs=0.005)
        assert math.isnan(_against_distribution(np.array([1.0]), ref)["std_ratio"])

    def test_closures_of_several_curves(self):
        """A segment counts where its curve reaches its own closed level."""
        fps = 25.0
        curve = np.ones(100)
        curve[[20, 60]] = 0.0  # dips at 0.8 s and 2.4 s
        segs = [(0.8, 0.84), (2.4, 2.44), (3.2, 3.24)]
        r = closures(segs, {"c": (curve, 0.1), "never": (curve, -1.0)}, fps)
        assert r["n_segments"] == 3
        assert r["c"]["n_closed"] == 2 and r["c"]["rate"] == pytest.approx(2 / 3)
        assert r["never"]["rate"] == 0.0 and "closed" not in r["c"]
        assert closures(None, {"c": (curve, 0.1)}, fps) == {}

    def test_proxy_reliability(self):
        assert proxy_reliability(0.45)["informative"]
        low = proxy_reliability(0.09)
        assert not low["informative"] and "uninformative" in low["note"]
        assert not proxy_reliability(float("nan"))["informative"]
        assert proxy_reliability(None)["r_real"] is None

    def test_mouth_opening_2d_and_fill(self):
        lms = np.zeros((2, 468, 2))
        a, b = topology.EYE_CORNERS
        lms[:, b, 0] = 100.0  # eye distance 100 px
        for _, lo in topology.MOUTH_OPENING_PAIRS:
            lms[0, lo, 1] = 10.0
            lms[1, lo, 1] = 30.0
        np.testing.assert_allclose(mouth_opening_2d(lms, "mediapipe", (a, b)), [0.1, 0.3])
        np.testing.assert_allclose(fill_nan(np.array([1.0, np.nan, 3.0])), [1.0, 2.0, 3.0])

    def test_audio_files(self, tmp_path):
        (tmp_path / "a").mkdir()
        for f in ("a/x.wav", "a/y.ogg", "a/readme.txt", "z.flac"):
            (tmp_path / f).write_bytes(b"")
        got = audio_files([tmp_path / "a", tmp_path / "z.flac"])
        assert [p.name for p in got] == ["x.wav", "y.ogg", "z.flac"]
        with pytest.raises(InputError, match="nope"):
            audio_files([tmp_path / "nope.wav"])


def test_dropout_only_in_training():
    from nvp.nets.audio2expression import A2ENetConfig, PerFrameAudioNet

    net = PerFrameAudioNet(A2ENetConfig(feature_dim=12, dropout=0.5))
    x = torch.randn(64, 16, 12)
    net.eval()
    torch.testing.assert_close(net(x), net(x))  # deterministic at inference
    net.train()
    torch.manual_seed(0)
    a = net(x)
    assert not torch.allclose(a, net(x))  # a fresh dropout mask per call
    plain = PerFrameAudioNet(A2ENetConfig(feature_dim=12))
    assert [k for k, _ in plain.named_parameters()] == [k for k, _ in net.named_parameters()]
    with pytest.raises(ValueError, match="dropout"):
        A2ENetConfig(feature_dim=12, dropout=1.0)
