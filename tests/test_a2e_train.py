"""The A2E system: loss, metrics, data sampling, training smoke runs, resume, target fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nvp.a2e.config import A2EConfig, A2EDataConfig, A2ELossConfig, FitTargetConfig
from nvp.a2e.data import A2EDataModule, BalancedSampler
from nvp.a2e.loss import ExpressionLoss, vertex_weights
from nvp.a2e.target import solve_mapping
from nvp.cli import main
from nvp.config import CONF_DIR, load
from nvp.metrics import VertexRMSE, mouth_opening_mm
from nvp.nets.audio2expression import A2ENetConfig


def _basis(V=30, K=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(3 * V, K, generator=g, dtype=torch.float64))
    return q.reshape(V, 3, K).float()


class TestExpressionLoss:
    def test_matches_vertex_computation(self):
        V, K, B = 30, 5, 4
        basis = _basis(V, K)
        mouth = torch.zeros(V)
        mouth[:6] = 1.0
        cfg = A2ELossConfig(mouth_factor=10, temporal_weight=20)
        loss = ExpressionLoss(basis, mouth, cfg)
        pred, tgt = torch.randn(B, 3, K), torch.randn(B, 3, K)
        out = loss(pred, tgt)
        w = vertex_weights(mouth, 10.0)

        def naive_rms(d):  # d: (B, K) -> build vertices explicitly
            v = torch.einsum("vck,bk->bvc", basis, d)
            per = ((v**2).sum(-1) * w).sum(-1) / w.sum()
            return per.mean().sqrt()

        d = pred - tgt
        main_ = naive_rms(d[:, 1])
        temp = (
            naive_rms(d[:, 1] - d[:, 0])
            + naive_rms(d[:, 2] - d[:, 1])
            + naive_rms(d[:, 2] - d[:, 0])
        )
        torch.testing.assert_close(out["rms"], main_, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out["temporal"], temp, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out["loss"], main_ + 20 * temp, rtol=1e-5, atol=1e-5)

    def test_constant_error_has_no_temporal_term(self):
        basis = _basis()
        loss = ExpressionLoss(basis, torch.zeros(30), A2ELossConfig())
        tgt = torch.randn(2, 3, 5)
        out = loss(tgt + torch.ones(2, 1, 5), tgt)
        assert out["temporal"] < 1e-4 and out["rms"] > 0.3

    def test_mouth_weight_emphasises_mouth(self):
        mouth = torch.zeros(30)
        mouth[:6] = 1
        v0 = torch.zeros(30, 3)
        v0[:6] = 1.0  # a component that moves only the mouth vertices
        q, _ = torch.linalg.qr(torch.cat([v0.reshape(-1, 1), torch.randn(90, 4)], 1))
        basis = q.reshape(30, 3, 5)
        d = torch.zeros(1, 3, 5)
        d[..., 0] = 1.0
        flat = ExpressionLoss(basis, mouth, A2ELossConfig(mouth_factor=1))(d, torch.zeros_like(d))
        heavy = ExpressionLoss(basis, mouth, A2ELossConfig(mouth_factor=10))(d, torch.zeros_like(d))
        # weighted mean over vertices: 10 / (6 * 10 + 24) vs 1 / 30
        torch.testing.assert_close(heavy["rms"] ** 2 / flat["rms"] ** 2, torch.tensor(300 / 84))

    def test_intermediate_term_switch(self):
        basis = _basis()
        pred, tgt, inter = torch.zeros(2, 3, 5), torch.zeros(2, 3, 5), torch.ones(2, 5)
        off = ExpressionLoss(basis, torch.zeros(30), A2ELossConfig(intermediate_weight=0))
        on = ExpressionLoss(basis, torch.zeros(30), A2ELossConfig(intermediate_weight=1))
        assert off(pred, tgt, inter)["loss"] < 1e-4
        assert on(pred, tgt, inter)["loss"] > 0.1

    def test_gradient(self):
        basis = _basis()
        loss = ExpressionLoss(basis, torch.rand(30), A2ELossConfig())
        pred = torch.randn(3, 3, 5, requires_grad=True)
        loss(pred, torch.randn(3, 3, 5))["loss"].backward()
        assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


class TestMetrics:
    def test_vertex_rmse_naive(self):
        basis = _basis()
        w = torch.zeros(30)
        w[3:9] = 1
        m = VertexRMSE(basis, w)
        p, t = torch.randn(7, 5), torch.randn(7, 5)
        m.update(p[:3], t[:3])
        m.update(p[3:], t[3:])
        v = torch.einsum("vck,bk->bvc", basis, p - t)
        ref = (((v**2).sum(-1) * w).sum(-1) / w.sum()).mean().sqrt()
        torch.testing.assert_close(m.compute(), ref, rtol=1e-5, atol=1e-6)

    def test_mouth_opening(self):
        V = 20
        ident = torch.zeros(V, 3)
        ident[1, 1] = 2.0  # pair (1, 0) 2 mm apart
        basis = torch.zeros(V, 3, 1)
        basis[1, 1, 0] = 1.0
        op = mouth_opening_mm(ident, torch.tensor([[0.0], [3.0]]), basis, torch.tensor([[1, 0]]))
        torch.testing.assert_close(op, torch.tensor([2.0, 5.0]))


class TestMappingSolve:
    def test_recovers_exact_map(self):
        rng = np.random.default_rng(0)
        M = rng.normal(size=(6, 4))
        x = rng.normal(size=(100, 4))
        e = x @ M.T
        np.testing.assert_allclose(solve_mapping(x, e, 0.0), M, atol=1e-8)
        G = np.diag(rng.uniform(0.5, 3, 6))
        np.testing.assert_allclose(solve_mapping(x, e, 0.0, G), M, atol=1e-8)

    def test_ridge_shrinks(self):
        rng = np.random.default_rng(1)
        x, e = rng.normal(size=(50, 4)), rng.normal(size=(50, 3))
        assert np.linalg.norm(solve_mapping(x, e, 10.0)) < np.linalg.norm(solve_mapping(x, e, 0))


class TestData:
    def test_windows_and_splits(self, a2e_dataset):
        net = A2ENetConfig(feature_dim=80)
        dm = A2EDataModule(a2e_dataset, A2EDataConfig(), net)
        dm.setup()
        assert dm.n_sequences == 3
        item = dm.train_set[0]
        assert item["windows"].shape == (10, 16, 80)
        assert item["expression"].shape == (3, dm.face_model.n_components)
        s = dm.seqs[int(item["sequence"])]
        t = int(item["frame"])
        frames = np.clip(np.arange(t - 4, t + 6), 0, s.n_frames - 1)
        np.testing.assert_allclose(item["windows"].numpy(), s.features[frames].astype(np.float32))
        np.testing.assert_allclose(item["expression"].numpy(), s.expression[t - 1 : t + 2])
        for ds, split in ((dm.train_set, "train"), (dm.val_set, "val")):
            for si, t in ds.items:
                a, b = dm.seqs[si].splits[split]
                assert a <= t - 1 and t + 1 < b  # pairs never leave the split

    def test_lazy_reads_match_memory(self, a2e_dataset):
        net = A2ENetConfig(feature_dim=80)
        mem = A2EDataModule(a2e_dataset, A2EDataConfig(), net)
        lazy = A2EDataModule(a2e_dataset, A2EDataConfig(in_memory_mb=0), net)
        mem.setup()
        lazy.setup()
        assert lazy.seqs[0].features is None
        torch.testing.assert_close(mem.train_set[5]["windows"], lazy.train_set[5]["windows"])

    def test_balanced_sampler(self):
        seq = np.array([0] * 900 + [1] * 100)
        s = BalancedSampler(seq, 4000, seed=0)
        draws = seq[list(s)]
        assert abs((draws == 1).mean() - 0.5) < 0.05
        assert list(s) != list(s)  # a new draw every epoch

    def test_bad_feature_dim(self, a2e_dataset):
        from nvp.errors import InputError

        with pytest.raises(InputError, match=r"net\.feature_dim=80"):
            A2EDataModule(a2e_dataset, A2EDataConfig(), A2ENetConfig(feature_dim=29))

    def test_excluded_sequences(self, a2e_dataset):
        dm = A2EDataModule(
            a2e_dataset, A2EDataConfig(exclude=["talker2"]), A2ENetConfig(feature_dim=80)
        )
        assert dm.names == ["talker0", "talker1"]
        dm.setup()
        assert {dm.names[int(i)] for i in dm.train_set.items[:, 0]} == {"talker0", "talker1"}


def _configs() -> list[list[str]]:
    runs = [["--config", str(CONF_DIR / "a2e" / n)] for n in ("release.yaml", "paper.yaml")]
    runs.append([])  # default.yaml (the default layer)
    for exp in sorted((CONF_DIR / "experiment").glob("a2e_*.yaml")):
        runs.append(["--config", str(exp)])
    return runs


@pytest.mark.parametrize("extra", _configs(), ids=lambda e: Path(e[-1]).stem if e else "default")
def test_two_step_smoke(a2e_dataset, tmp_path, extra):
    code = main(
        [
            "train-a2e",
            str(a2e_dataset),
            *extra,
            "--config",
            str(CONF_DIR / "a2e" / "tiny.yaml"),
            f"out={tmp_path}",
            "trainer.max_steps=2",
        ]
    )
    assert code == 0
    (run,) = list(tmp_path.glob("a2e-*"))
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "config.yaml").is_file()
    assert (run / "logs" / "metrics.csv").is_file()


def test_train_resume_and_fit_target(a2e_dataset, tmp_path, capsys):
    tiny = str(CONF_DIR / "a2e" / "tiny.yaml")
    assert (
        main(
            [
                "train-a2e",
                str(a2e_dataset),
                "--config",
                tiny,
                f"out={tmp_path}/a",
                "trainer.max_epochs=1",
            ]
        )
        == 0
    )
    (run,) = list((tmp_path / "a").glob("a2e-*"))
    ckpt = run / "checkpoints" / "last.ckpt"
    first = torch.load(ckpt, weights_only=False)
    assert first["global_step"] == 4 and "face_model_npz" in first["nvp"]
    assert list((run / "samples").glob("*.png"))
    assert (
        main(
            [
                "train-a2e",
                str(a2e_dataset),
                "--config",
                tiny,
                f"out={tmp_path}/b",
                "trainer.max_epochs=2",
                f"resume={run}",
            ]
        )
        == 0
    )
    (run2,) = list((tmp_path / "b").glob("a2e-*"))
    second = torch.load(run2 / "checkpoints" / "last.ckpt", weights_only=False)
    assert second["global_step"] == 8 and second["epoch"] == 1

    from nvp.a2e.checkpoint import load_a2e

    assert load_a2e(run2).path.name == "best.ckpt"  # a run directory: its best validation
    bundle = load_a2e(run2 / "checkpoints" / "last.ckpt")
    assert bundle.face_model is not None and bundle.sequence_names == [
        "talker0",
        "talker1",
        "talker2",
    ]
    sd = second["state_dict"]
    torch.testing.assert_close(bundle.net.mapping.detach(), sd["net.mapping"])

    capsys.readouterr()
    store = a2e_dataset / "talker2.zarr"
    assert (
        main(
            [
                "fit-target",
                str(run2 / "checkpoints" / "last.ckpt"),
                str(store),
                "mode=vertex",
                "fit_splits=[train]",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "held-out frames" in out and "baseline" in out
    (mp,) = list(a2e_dataset.glob(f"talker2.a2e-{bundle.hash}.mapping.npz"))
    from nvp.a2e.target import load_mapping

    M, offset, meta = load_mapping(mp)
    assert M.shape == (bundle.face_model.n_components, 32)
    assert offset.shape == (bundle.face_model.n_components,) and np.abs(offset).sum() > 0
    assert meta["a2e_hash"] == bundle.hash and meta["report"]["n_fit"] > 32


def test_fit_target_rejects_other_features(a2e_dataset, tmp_path):
    from nvp.a2e.checkpoint import load_a2e
    from nvp.a2e.target import fit_target
    from nvp.data.store import SequenceStore
    from nvp.errors import InputError

    tiny = str(CONF_DIR / "a2e" / "tiny.yaml")
    assert (
        main(
            [
                "train-a2e",
                str(a2e_dataset),
                "--config",
                tiny,
                f"out={tmp_path}",
                "trainer.max_steps=1",
            ]
        )
        == 0
    )
    bundle = load_a2e(next(tmp_path.glob("a2e-*")))
    bundle.feature_signature = {**bundle.feature_signature, "name": "mfcc"}
    with pytest.raises(InputError, match="audio features"):
        fit_target(bundle, SequenceStore(a2e_dataset / "talker0.zarr"), FitTargetConfig())


def test_config_loads():
    cfg = load(A2EConfig, "a2e/paper.yaml", "a2e/release.yaml")
    assert cfg.optim.beta1 == 0.5 and cfg.net.conv_slopes == [0.02, 0.02, 0.2, 0.2]


@pytest.mark.realdata
def test_import_official_cli_reproduces_reference(real_data, tmp_path):
    from nvp.a2e.checkpoint import load_a2e

    rel = real_data / "nvp_release"
    out = tmp_path / "official.ckpt"
    assert main(["import-official-a2e", str(rel / "a2e_latest_netG.pth"), "--out", str(out)]) == 0
    bundle = load_a2e(out)
    assert bundle.face_model is None and bundle.feature_signature["dim"] == 29
    ref = np.load(rel / "ref_greta.npz")
    feats = torch.as_tensor(np.load(rel / "greta_features.npy"))
    with torch.no_grad():
        got = bundle.net.sequence_forward(feats, sequence=0)
    np.testing.assert_allclose(got["filtered"].numpy(), ref["filtered_audio_expr"], atol=1e-7)
    np.testing.assert_allclose(got["expression"].numpy(), ref["expr_identity0"], atol=2e-6)


def test_import_official_rejects_bad_file(tmp_path, capsys):
    bad = tmp_path / "x.pth"
    bad.write_bytes(b"not a checkpoint")
    assert main(["import-official-a2e", str(bad), "--out", str(tmp_path / "o.ckpt")]) == 1
    assert "x.pth" in capsys.readouterr().err
    assert not (tmp_path / "o.ckpt").exists()


def test_mapping_prior_dominates_without_data():
    rng = np.random.default_rng(2)
    M0 = rng.normal(size=(3, 4))
    x, e = rng.normal(size=(5, 4)), rng.normal(size=(5, 3))
    np.testing.assert_allclose(solve_mapping(x, e, 1e6, prior=M0), M0, atol=1e-4)
    G = np.diag([1.0, 2.0, 3.0])
    np.testing.assert_allclose(solve_mapping(x, e, 1e6, G, prior=M0), M0, atol=1e-4)
