"""Tests of nvp.nets.audio2expression against naive float64 references (fast, CPU)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from nvp.errors import ConfigError
from nvp.nets import (
    A2ENetConfig,
    Audio2ExpressionNet,
    PerFrameAudioNet,
    TemporalFilter,
    count_parameters,
    release_config,
    window_indices,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    return torch.device(request.param)


def tiny_config(**kw) -> A2ENetConfig:
    """A small network (W = 4, D = 3, T = 4) for gradchecks and loops."""
    base = dict(
        feature_dim=3,
        window=4,
        conv_channels=[4, 5],
        conv_slopes=[0.1, 0.3],
        fc_dims=[6],
        fc_slope=0.05,
        audio_expr_dim=5,
        seq_len=4,
        current_slot=1,
        intermediate_slot=2,
        filter_channels=[3, 1],
        filter_slope=0.2,
        expr_scale=3.0,
    )
    base.update(kw)
    return A2ENetConfig(**base)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def randomize_(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random values in every parameter, biases included, so the references see them all.

    Weights have std 1 / sqrt(fan_in) and biases std 0.1: activations stay of order 1 and the
    tanh is not saturated.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            std = 1.0 / p[0].numel() ** 0.5 if p.ndim >= 2 else 0.1
            p.copy_(std * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


# --------------------------------------------------------------------------------------------
# Naive references: explicit loops in float64 numpy.


def leaky(x: np.ndarray, slope: float) -> np.ndarray:
    return np.where(x > 0, x, slope * x)


def naive_conv1d(h: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int) -> np.ndarray:
    """(C_in, L) -> (C_out, L_out): kernel 3, zero padding 1, explicit tap loop."""
    _, length = h.shape
    l_out = (length + 2 - 3) // stride + 1
    out = np.zeros((w.shape[0], l_out))
    for o in range(l_out):
        for k in range(3):
            i = stride * o - 1 + k
            if 0 <= i < length:
                out[:, o] += w[:, :, k] @ h[:, i]
        out[:, o] += b
    return out


def naive_per_frame(net: PerFrameAudioNet, cfg: A2ENetConfig, x: np.ndarray) -> np.ndarray:
    """One window (W, D) -> (A,)."""
    h = x.T.astype(np.float64)  # (D, W): features are channels, rows are time
    convs = [m for m in net.conv if isinstance(m, torch.nn.Conv1d)]
    for conv, slope in zip(convs, cfg.conv_slopes, strict=True):
        w, b = conv.weight.detach().double().numpy(), conv.bias.detach().double().numpy()
        h = leaky(naive_conv1d(h, w, b, stride=2), slope)
    assert h.shape[1] == 1
    v = h[:, 0]
    fcs = [m for m in net.fc if isinstance(m, torch.nn.Linear)]
    for i, fc in enumerate(fcs):
        v = fc.weight.detach().double().numpy() @ v + fc.bias.detach().double().numpy()
        v = leaky(v, cfg.fc_slope) if i < len(fcs) - 1 else np.tanh(v)
    return v


def naive_filter(
    filt: TemporalFilter, cfg: A2ENetConfig, ae: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T, A) -> logits (T,), weights (T,), filtered (A,)."""
    h = ae.T.astype(np.float64)  # (A, T)
    for conv in [m for m in filt.conv if isinstance(m, torch.nn.Conv1d)]:
        w, b = conv.weight.detach().double().numpy(), conv.bias.detach().double().numpy()
        h = leaky(naive_conv1d(h, w, b, stride=1), cfg.filter_slope)
    lin = filt.linear
    logits = lin.weight.detach().double().numpy() @ h[0] + lin.bias.detach().double().numpy()
    e = np.exp(logits - logits.max())
    weights = e / e.sum()
    filtered = sum(weights[k] * ae[k].astype(np.float64) for k in range(len(weights)))
    return logits, weights, filtered


# --------------------------------------------------------------------------------------------


class TestWindowIndices:
    def test_smoke(self):
        idx = window_indices(20)
        assert idx.shape == (20, 8) and idx.dtype == torch.int64

    def test_feature_edges(self):
        idx = window_indices(241, seq_len=8, current_slot=3)
        assert idx[0].tolist() == [0, 0, 0, 0, 1, 2, 3, 4]
        assert idx[1].tolist() == [0, 0, 0, 1, 2, 3, 4, 5]
        assert idx[100].tolist() == list(range(97, 105))
        assert idx[240].tolist() == [237, 238, 239, 240, 240, 240, 240, 240]
        assert idx[236].tolist() == list(range(233, 241))

    def test_feature_naive(self):
        for n, t, c in [(1, 8, 3), (3, 8, 3), (10, 5, 0), (10, 5, 4), (7, 1, 0)]:
            expected = [[min(max(f - c + k, 0), n - 1) for k in range(t)] for f in range(n)]
            assert window_indices(n, t, c).tolist() == expected

    def test_exception(self):
        with pytest.raises(ValueError, match="n_frames"):
            window_indices(0)
        with pytest.raises(ValueError, match="current_slot"):
            window_indices(10, seq_len=8, current_slot=8)
        with pytest.raises(ValueError, match="seq_len"):
            window_indices(10, seq_len=0, current_slot=0)


class TestA2ENetConfig:
    def test_release_config(self):
        cfg = release_config()
        assert cfg.conv_slopes == [0.02, 0.02, 0.2, 0.2]
        assert (cfg.feature_dim, cfg.window, cfg.seq_len) == (29, 16, 8)
        assert (cfg.current_slot, cfg.intermediate_slot, cfg.expr_scale) == (3, 4, 10.0)
        paper = A2ENetConfig()
        diff = {
            f.name
            for f in dataclasses.fields(A2ENetConfig)
            if getattr(cfg, f.name) != getattr(paper, f.name)
        }
        assert diff == {"conv_slopes"}
        assert release_config(80).feature_dim == 80

    def test_omegaconf_structured(self):
        cfg = OmegaConf.merge(
            OmegaConf.structured(A2ENetConfig), {"feature_dim": 80, "conv_slopes": [0.1] * 4}
        )
        net = Audio2ExpressionNet(cfg, n_sequences=2, expression_dim=7)  # DictConfig works too
        assert net(torch.randn(1, 8, 16, 80))["filtered"].shape == (1, 32)
        obj = OmegaConf.to_object(cfg)
        assert isinstance(obj, A2ENetConfig) and obj.conv_slopes == [0.1] * 4
        with pytest.raises(Exception, match="windw"):
            OmegaConf.merge(OmegaConf.structured(A2ENetConfig), {"windw": 16})

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            ({"window": 17}, "window=17"),
            ({"window": 0}, "window=0"),
            ({"window": 8, "conv_channels": [32, 32], "conv_slopes": [0.02]}, "conv_slopes"),
            ({"current_slot": 8}, "current_slot"),
            ({"intermediate_slot": -1}, "intermediate_slot"),
            ({"filter_channels": [16, 2]}, "filter_channels"),
            ({"feature_dim": 0}, "feature_dim"),
        ],
    )
    def test_exception(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            A2ENetConfig(**kwargs)
        with pytest.raises(ConfigError):  # also reported as a config error by the CLI
            A2ENetConfig(**kwargs)

    def test_exception_after_merge(self):
        # OmegaConf merges do not re-run __post_init__: the nets validate again.
        bad = OmegaConf.merge(OmegaConf.structured(A2ENetConfig), {"window": 32})
        with pytest.raises(ValueError, match="window=32"):
            PerFrameAudioNet(bad)
        with pytest.raises(ValueError, match="window=32"):
            Audio2ExpressionNet(bad, n_sequences=1, expression_dim=4)

    @pytest.mark.parametrize("window", [9, 12, 16])
    def test_windows_reduced_to_one_row(self, window):
        net = PerFrameAudioNet(A2ENetConfig(window=window))
        assert net(torch.randn(2, window, 29)).shape == (2, 32)


class TestPerFrameAudioNet:
    def test_smoke(self, device):
        net = PerFrameAudioNet(A2ENetConfig()).to(device)
        out = net(torch.randn(3, 16, 29, device=device))
        assert out.device.type == device.type and out.dtype == torch.float32

    @pytest.mark.parametrize("feature_dim", [29, 80, 39, 384])
    @pytest.mark.parametrize("batch", [1, 5])
    def test_cardinality(self, feature_dim, batch, device):
        net = PerFrameAudioNet(A2ENetConfig(feature_dim=feature_dim)).to(device)
        out = net(torch.randn(batch, 16, feature_dim, device=device))
        assert out.shape == (batch, 32)
        assert out.abs().max() < 1.0

    def test_architecture(self):
        net = PerFrameAudioNet(release_config())
        convs = [m for m in net.conv if isinstance(m, torch.nn.Conv1d)]
        assert [tuple(c.weight.shape) for c in convs] == [
            (32, 29, 3),
            (32, 32, 3),
            (64, 32, 3),
            (64, 64, 3),
        ]
        assert all(c.stride == (2,) and c.padding == (1,) for c in convs)
        slopes = [m.negative_slope for m in net.conv if isinstance(m, torch.nn.LeakyReLU)]
        assert slopes == [0.02, 0.02, 0.2, 0.2]
        fcs = [tuple(m.weight.shape) for m in net.fc if isinstance(m, torch.nn.Linear)]
        assert fcs == [(128, 64), (64, 128), (32, 64)]
        assert isinstance(net.fc[-1], torch.nn.Tanh)

    @pytest.mark.parametrize(
        "cfg", [release_config(), A2ENetConfig(feature_dim=7, window=13), tiny_config()]
    )
    def test_feature_naive(self, cfg):
        net = randomize_(PerFrameAudioNet(cfg)).double()
        x = torch.randn(4, cfg.window, cfg.feature_dim, dtype=torch.float64)
        with torch.no_grad():
            out = net(x).numpy()
        assert np.abs(out).max() < 0.99  # tanh not saturated
        expected = np.stack([naive_per_frame(net, cfg, xi) for xi in x.numpy()])
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)

    def test_frames_are_independent(self):
        net = randomize_(PerFrameAudioNet(tiny_config()))
        x = torch.randn(6, 4, 3)
        with torch.no_grad():
            torch.testing.assert_close(net(x)[2:3], net(x[2:3]))

    def test_init(self):
        net = PerFrameAudioNet(A2ENetConfig())
        for m in net.modules():
            if isinstance(m, torch.nn.Conv1d | torch.nn.Linear):
                assert torch.count_nonzero(m.bias) == 0
                fan_in = m.weight[0].numel()
                fan_out = m.weight.shape[0] * m.weight[0, 0].numel()
                bound = (6.0 / (fan_in + fan_out)) ** 0.5  # Xavier-uniform
                assert m.weight.abs().max() <= bound and m.weight.abs().max() > 0.5 * bound

    def test_exception(self):
        net = PerFrameAudioNet(A2ENetConfig())
        with pytest.raises(ValueError, match=r"\(B, 16, 29\)"):
            net(torch.randn(2, 29, 16))
        with pytest.raises(ValueError, match=r"\(B, 16, 29\)"):
            net(torch.randn(2, 8, 16, 29))

    def test_gradcheck(self):
        cfg = tiny_config()
        net = randomize_(PerFrameAudioNet(cfg)).double()
        x = torch.randn(2, cfg.window, cfg.feature_dim, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(net, (x,))


class TestTemporalFilter:
    @pytest.mark.parametrize("batch", [1, 4])
    def test_cardinality(self, batch, device):
        filt = TemporalFilter(A2ENetConfig()).to(device)
        filtered, weights = filt(torch.randn(batch, 8, 32, device=device))
        assert filtered.shape == (batch, 32) and weights.shape == (batch, 8)
        assert filt.logits(torch.randn(batch, 8, 32, device=device)).shape == (batch, 8)

    def test_architecture(self):
        filt = TemporalFilter(release_config())
        convs = [tuple(m.weight.shape) for m in filt.conv if isinstance(m, torch.nn.Conv1d)]
        assert convs == [(16, 32, 3), (8, 16, 3), (4, 8, 3), (2, 4, 3), (1, 2, 3)]
        # a LeakyReLU after every convolution, the last one included (as in the release)
        assert isinstance(filt.conv[-1], torch.nn.LeakyReLU)
        assert sum(isinstance(m, torch.nn.LeakyReLU) for m in filt.conv) == 5
        assert tuple(filt.linear.weight.shape) == (8, 8)

    def test_weights_sum_to_one(self):
        filt = randomize_(TemporalFilter(A2ENetConfig()))
        ae = torch.tanh(torch.randn(16, 8, 32))
        with torch.no_grad():
            filtered, weights = filt(ae)
        assert (weights >= 0).all()
        torch.testing.assert_close(weights.sum(1), torch.ones(16))
        expected = (weights[:, :, None] * ae).sum(1)
        torch.testing.assert_close(filtered, expected)

    @pytest.mark.parametrize("cfg", [release_config(), tiny_config()])
    def test_feature_naive(self, cfg):
        filt = randomize_(TemporalFilter(cfg), seed=1).double()
        ae = torch.tanh(torch.randn(3, cfg.seq_len, cfg.audio_expr_dim, dtype=torch.float64))
        with torch.no_grad():
            filtered, weights = filt(ae)
            logits = filt.logits(ae)
        for i in range(3):
            ref_logits, ref_weights, ref_filtered = naive_filter(filt, cfg, ae[i].numpy())
            np.testing.assert_allclose(logits[i].numpy(), ref_logits, rtol=0, atol=1e-12)
            np.testing.assert_allclose(weights[i].numpy(), ref_weights, rtol=0, atol=1e-14)
            np.testing.assert_allclose(filtered[i].numpy(), ref_filtered, rtol=0, atol=1e-14)

    def test_exception(self):
        filt = TemporalFilter(A2ENetConfig())
        with pytest.raises(ValueError, match=r"\(B, 8, 32\)"):
            filt(torch.randn(2, 7, 32))

    def test_gradcheck(self):
        cfg = tiny_config()
        filt = randomize_(TemporalFilter(cfg)).double()
        ae = torch.randn(2, cfg.seq_len, cfg.audio_expr_dim, dtype=torch.float64)
        assert torch.autograd.gradcheck(lambda x: filt(x), (ae.requires_grad_(),))


class TestAudio2ExpressionNet:
    def test_smoke(self, device):
        net = Audio2ExpressionNet(A2ENetConfig(), n_sequences=3, expression_dim=76).to(device)
        out = net(torch.randn(2, 8, 16, 29, device=device), torch.tensor([0, 2], device=device))
        assert out["expression"].device.type == device.type

    @pytest.mark.parametrize("feature_dim", [29, 80, 384])
    def test_cardinality(self, feature_dim):
        cfg = A2ENetConfig(feature_dim=feature_dim)
        net = Audio2ExpressionNet(cfg, n_sequences=3, expression_dim=76)
        windows = torch.randn(5, 8, 16, feature_dim)
        out = net(windows, sequence=torch.tensor([0, 1, 2, 1, 0]))
        shapes = {k: tuple(v.shape) for k, v in out.items()}
        assert shapes == {
            "per_frame": (5, 8, 32),
            "weights": (5, 8),
            "logits": (5, 8),
            "filtered": (5, 32),
            "expression": (5, 76),
            "intermediate": (5, 76),
        }
        assert set(net(windows)) == {"per_frame", "weights", "logits", "filtered"}
        assert net(windows, mapping=torch.randn(11, 32))["expression"].shape == (5, 11)
        assert net.mapping.shape == (3, 76, 32)

    def test_feature_naive(self):
        cfg = tiny_config()
        net = randomize_(Audio2ExpressionNet(cfg, n_sequences=3, expression_dim=6)).double()
        windows = torch.randn(2, cfg.seq_len, cfg.window, cfg.feature_dim, dtype=torch.float64)
        seq = torch.tensor([2, 0])
        with torch.no_grad():
            out = net(windows, sequence=seq)
        for b in range(2):
            ae = np.stack([naive_per_frame(net.per_frame, cfg, w) for w in windows[b].numpy()])
            _, weights, filtered = naive_filter(net.temporal_filter, cfg, ae)
            m = net.mapping[seq[b]].detach().numpy()
            np.testing.assert_allclose(out["per_frame"][b].numpy(), ae, atol=1e-12)
            np.testing.assert_allclose(out["weights"][b].numpy(), weights, atol=1e-12)
            np.testing.assert_allclose(out["filtered"][b].numpy(), filtered, atol=1e-12)
            np.testing.assert_allclose(
                out["expression"][b].numpy(), cfg.expr_scale * m @ filtered, atol=1e-11
            )
            np.testing.assert_allclose(
                out["intermediate"][b].numpy(),
                cfg.expr_scale * m @ ae[cfg.intermediate_slot],
                atol=1e-11,
            )

    def test_mapping_argument(self):
        cfg = tiny_config()
        net = randomize_(Audio2ExpressionNet(cfg, n_sequences=3, expression_dim=6))
        windows = torch.randn(4, cfg.seq_len, cfg.window, cfg.feature_dim)
        seq = torch.tensor([1, 1, 0, 2])
        with torch.no_grad():
            by_index = net(windows, sequence=seq)
            per_sample = net(windows, mapping=net.mapping[seq])
            shared = net(windows, mapping=net.mapping[1])
        torch.testing.assert_close(per_sample["expression"], by_index["expression"])
        torch.testing.assert_close(shared["expression"][:2], by_index["expression"][:2])
        torch.testing.assert_close(shared["intermediate"][:2], by_index["intermediate"][:2])
        with pytest.raises(ValueError, match="not both"):
            net(windows, sequence=seq, mapping=net.mapping[1])
        with pytest.raises(ValueError, match="mapping must be"):
            net(windows, mapping=torch.randn(6, 7))

    def test_exception(self):
        net = Audio2ExpressionNet(A2ENetConfig(), n_sequences=2, expression_dim=76)
        with pytest.raises(ValueError, match=r"\(B, 8, 16, 29\)"):
            net(torch.randn(2, 7, 16, 29))
        with pytest.raises(ValueError, match=r"\(B, 8, 16, 29\)"):
            net(torch.randn(2, 8, 16, 80))
        with pytest.raises(ValueError, match=r"\(N, 16, 29\)"):
            net.sequence_forward(torch.randn(10, 8, 16, 29))
        with pytest.raises(ValueError, match="n_sequences"):
            Audio2ExpressionNet(A2ENetConfig(), n_sequences=0, expression_dim=76)

    @pytest.mark.parametrize("n_frames", [1, 5, 37])
    def test_sequence_forward_equals_windows(self, n_frames):
        cfg = tiny_config(seq_len=6, current_slot=2, intermediate_slot=3)
        net = randomize_(Audio2ExpressionNet(cfg, n_sequences=2, expression_dim=6)).double()
        feats = torch.randn(n_frames, cfg.window, cfg.feature_dim, dtype=torch.float64)
        idx = window_indices(n_frames, cfg.seq_len, cfg.current_slot)
        with torch.no_grad():
            ref = net(feats[idx], sequence=torch.ones(n_frames, dtype=torch.long))
            out = net.sequence_forward(feats, sequence=1, batch=4)
            ae = net.audio_expressions(feats, batch=3)
        assert out["window_index"].tolist() == idx.tolist()
        for key, value in ref.items():
            torch.testing.assert_close(out[key], value, rtol=0, atol=1e-13)
        torch.testing.assert_close(ae, ref["filtered"], rtol=0, atol=1e-13)

    def test_sequence_forward_runs_per_frame_net_once(self):
        net = Audio2ExpressionNet(A2ENetConfig(), n_sequences=1, expression_dim=4)
        seen: list[int] = []
        net.per_frame.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
        net.sequence_forward(torch.randn(50, 16, 29), batch=16)
        assert sum(seen) == 50

    def test_without_temporal_filter(self):
        cfg = tiny_config(temporal_filter=False)
        net = randomize_(Audio2ExpressionNet(cfg, n_sequences=2, expression_dim=6))
        assert net.temporal_filter is None
        windows = torch.randn(3, cfg.seq_len, cfg.window, cfg.feature_dim)
        with torch.no_grad():
            out = net(windows, sequence=torch.tensor([0, 1, 0]))
        expected_weights = torch.zeros(3, cfg.seq_len)
        expected_weights[:, cfg.current_slot] = 1.0
        torch.testing.assert_close(out["weights"], expected_weights)
        torch.testing.assert_close(out["filtered"], out["per_frame"][:, cfg.current_slot])
        torch.testing.assert_close(torch.softmax(out["logits"], 1), expected_weights)
        filtered, weights = net.filter_windows(out["per_frame"])
        torch.testing.assert_close(filtered, out["filtered"])
        torch.testing.assert_close(weights, expected_weights)
        ref = count_parameters(Audio2ExpressionNet(tiny_config(), 2, 6))
        assert count_parameters(net) == ref - count_parameters(TemporalFilter(tiny_config()))

    def test_parameter_count(self):
        # 327,397: the authors' released checkpoint (116 sequences, K = 76)
        assert count_parameters(Audio2ExpressionNet(release_config(), 116, 76)) == 327_397
        assert count_parameters(Audio2ExpressionNet(A2ENetConfig(), 116, 76)) == 327_397
        net = Audio2ExpressionNet(A2ENetConfig(), 1, 76)
        assert count_parameters(net.per_frame) == 43_136
        assert count_parameters(net.temporal_filter) == 2_149
        assert count_parameters(net) == 43_136 + 2_149 + 76 * 32
        net.mapping.requires_grad_(False)
        assert count_parameters(net, trainable_only=True) == 43_136 + 2_149

    def test_mapping_init(self):
        torch.manual_seed(0)
        net = Audio2ExpressionNet(A2ENetConfig(), n_sequences=116, expression_dim=76)
        assert abs(net.mapping.std().item() - 1.0) < 0.01
        assert abs(net.mapping.mean().item()) < 0.01
        small = Audio2ExpressionNet(A2ENetConfig(mapping_init_std=0.0), 2, 76)
        assert torch.count_nonzero(small.mapping) == 0

    def test_gradients_reach_every_parameter(self):
        cfg = tiny_config()
        net = randomize_(Audio2ExpressionNet(cfg, n_sequences=3, expression_dim=6))
        windows = torch.randn(4, cfg.seq_len, cfg.window, cfg.feature_dim)
        out = net(windows, sequence=torch.tensor([0, 2, 2, 0]))
        (out["expression"].square().sum() + out["intermediate"].square().sum()).backward()
        for name, p in net.named_parameters():
            assert p.grad is not None and torch.count_nonzero(p.grad) > 0, name
        assert torch.count_nonzero(net.mapping.grad[1]) == 0  # sequence 1 was not in the batch

    def test_gradcheck(self):
        cfg = tiny_config()
        net = randomize_(Audio2ExpressionNet(cfg, n_sequences=2, expression_dim=3)).double()
        windows = torch.randn(2, cfg.seq_len, cfg.window, cfg.feature_dim, dtype=torch.float64)
        mapping = torch.randn(3, cfg.audio_expr_dim, dtype=torch.float64)

        def fn(w: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, ...]:
            out = net(w, mapping=m)
            return out["expression"], out["intermediate"], out["weights"]

        assert torch.autograd.gradcheck(fn, (windows.requires_grad_(), mapping.requires_grad_()))
