"""Tests of the rendering stage's nets and losses: neural texture, U-Nets, VGG19, losses.

Fast, CPU; naive references where one exists. Receptive fields are measured as the extent of
the non-zero gradient of one output pixel with respect to the input.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from nvp.errors import ConfigError, InputError, MissingDependencyError
from nvp.nets.texture import NeuralTexture, uv_to_grid, uv_valid_mask
from nvp.nets.unet import (
    RenderUNet,
    UNetConfig,
    UNetConfigError,
    blending_config,
    blending_input,
    count_parameters,
    erode_background,
    receptive_field,
)
from nvp.nets.vgg import VGG19_LAYERS, VGGFeatures, default_vgg19_path, vgg19_features
from nvp.raster.texture import sample_texture
from nvp.render.losses import (
    PerceptualLoss,
    RenderLoss,
    RenderLossConfig,
    RenderLossConfigError,
    masked_l1,
    ssim_loss,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    return torch.device(request.param)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def centre_uv(rows: torch.Tensor, cols: torch.Tensor, size: int) -> torch.Tensor:
    """(..., 2) UVs of the centres of texels (rows, cols) of a size x size texture."""
    return torch.stack([(cols + 0.5) / size, (rows + 0.5) / size], -1)


def small_unet(**kw) -> UNetConfig:
    base = dict(in_channels=3, out_channels=3, base_width=4, max_width=16)
    base.update(kw)
    return UNetConfig(**base)


def randomize_(module: torch.nn.Module) -> torch.nn.Module:
    """Normal weights in every parameter so no gradient path is accidentally zero."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) / max(p[0].numel(), 1) ** 0.5)
    return module


def gradient_extent(net: torch.nn.Module, size: int, rows: range) -> list[int]:
    """Rows spanned by the non-zero input gradient of output pixel (r, r) for r in rows."""
    x = torch.randn(1, net.in_channels, size, size, dtype=torch.float64, requires_grad=True)
    y = net(x)
    extents = []
    for r in rows:
        (g,) = torch.autograd.grad(y[0, 0, r, r], x, retain_graph=True)
        hit = (g[0].abs().sum(0) > 0).any(1).nonzero()
        extents.append(int(hit.max() - hit.min() + 1))
    return extents


# --------------------------------------------------------------------------------------------
# Neural texture


class TestNeuralTexture:
    def test_smoke(self, device):
        tex = NeuralTexture(size=8, channels=4).to(device)
        uv = torch.rand(2, 5, 6, 2, device=device)
        out = tex(uv)
        assert out.shape == (2, 4, 5, 6) and out.dtype == torch.float32
        features, mask = tex.sample(uv)
        assert mask.shape == (2, 1, 5, 6) and mask.dtype == torch.bool and mask.all()
        assert torch.equal(features, out)
        assert tex.texture.shape == (4, 8, 8)

    def test_exception(self):
        tex = NeuralTexture(size=8, channels=4)
        with pytest.raises(ValueError, match=r"\(B, H, W, 2\)"):
            tex(torch.rand(5, 6, 2))
        with pytest.raises(ValueError, match="floating-point"):
            tex(torch.zeros(1, 5, 6, 2, dtype=torch.int64))
        with pytest.raises(ValueError, match="divisible"):
            NeuralTexture(size=12, levels=4)
        with pytest.raises(ValueError, match="channels"):
            NeuralTexture(channels=0)

    def test_background_is_exactly_zero(self, device):
        tex = NeuralTexture(size=8, channels=3).to(device)
        with torch.no_grad():
            tex.texture.fill_(7.0)
        uv = torch.rand(2, 6, 6, 2, device=device)
        uv[0, :2] = -1.0  # background rows
        uv[1, 3, 3, 0] = -0.25  # one negative coordinate is enough
        uv[1, 4, 4, 1] = float("nan")
        features, mask = tex.sample(uv)
        expected_mask = torch.ones(2, 1, 6, 6, dtype=torch.bool, device=device)
        expected_mask[0, 0, :2] = False
        expected_mask[1, 0, 3, 3] = expected_mask[1, 0, 4, 4] = False
        assert torch.equal(mask, expected_mask)
        assert torch.equal(uv_valid_mask(uv), expected_mask)
        assert (features[~expected_mask.expand_as(features)] == 0).all()
        inside = features[expected_mask.expand_as(features)]
        torch.testing.assert_close(inside, torch.full_like(inside, 7.0))

    @pytest.mark.parametrize("size", [8, 256])
    def test_feature_texel_centres_exact(self, size):
        """Texel (r, c) holds (r, c): sampling its centre returns exactly (r, c)."""
        rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        tex = NeuralTexture(size=size, channels=2)
        with torch.no_grad():
            tex.texture.copy_(torch.stack([rows, cols]).float())
        uv = centre_uv(rows, cols, size)[None]  # (1, size, size, 2): pixel (r, c) -> texel
        out = tex(uv)
        assert torch.equal(out[0, 0], rows.float()) and torch.equal(out[0, 1], cols.float())
        # u selects the column, v the row: a one-pixel map at u of column 3, v of row 1
        one = tex(centre_uv(torch.tensor([[1]]), torch.tensor([[3]]), size)[None].float())
        assert one[0, :, 0, 0].tolist() == [1.0, 3.0]

    def test_feature_between_centres_and_border(self):
        size = 8
        rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        tex = NeuralTexture(size=size, channels=2)
        with torch.no_grad():
            tex.texture.copy_(torch.stack([rows, cols]).float())
        # u = (c + 1) / W is half-way between the centres of columns c and c + 1
        uv = torch.tensor([[[[3 / size, 0.5 / size], [0.0, 0.0], [1.0, 1.0]]]])
        out = tex(uv)[0, :, 0]
        assert out[:, 0].tolist() == [0.0, 2.5]
        assert out[:, 1].tolist() == [0.0, 0.0]  # border texels repeated beyond the centres
        assert out[:, 2].tolist() == [7.0, 7.0]

    def test_feature_matches_raster_sample_texture(self):
        tex = NeuralTexture(size=16, channels=5)
        uv = torch.rand(2, 7, 9, 2)
        uv[0, 0] = -1.0
        ref = sample_texture(tex.texture.detach().permute(1, 2, 0), uv, align_corners=False)
        torch.testing.assert_close(tex(uv), ref.permute(0, 3, 1, 2), rtol=1e-6, atol=1e-6)
        grid = uv_to_grid(uv)
        assert grid.shape == uv.shape and (grid.abs() <= 1).all()

    def test_feature_float16_uv(self):
        size = 64
        rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        tex = NeuralTexture(size=size, channels=2)
        with torch.no_grad():
            tex.texture.copy_(torch.stack([rows, cols]).float())
        uv = centre_uv(rows, cols, size)[None]
        uv[0, :3] = -1.0
        out16 = tex(uv.half())
        assert out16.dtype == torch.float32
        torch.testing.assert_close(out16, tex(uv), rtol=0, atol=0)
        assert (out16[0, :, :3] == 0).all()

    def test_gradient_reaches_only_sampled_texels(self):
        size = 8
        tex = NeuralTexture(size=size, channels=3)
        rows, cols = torch.tensor([[1, 5]]), torch.tensor([[2, 6]])
        uv = torch.cat([centre_uv(rows, cols, size), -torch.ones(1, 2, 2)], 1)[None]  # (1,2,2,2)
        tex(uv).sum().backward()
        touched = tex.texture.grad.abs().sum(0) > 0
        expected = torch.zeros(size, size, dtype=torch.bool)
        expected[1, 2] = expected[5, 6] = True
        assert torch.equal(touched, expected)
        assert (tex.texture.grad[:, 1, 2] == 1).all()

    def test_feature_hierarchy_equals_dense(self):
        tex = NeuralTexture(size=16, channels=3, levels=3)
        assert [tuple(p.shape) for p in tex.pyramid] == [(3, 16, 16), (3, 8, 8), (3, 4, 4)]
        rows, cols = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
        at_centres = tex(centre_uv(rows, cols, 16)[None])[0]
        torch.testing.assert_close(at_centres, tex.dense(), rtol=1e-6, atol=1e-6)
        # level by level: each level sampled on its own grid
        uv = torch.rand(2, 11, 13, 2)
        ref = sum(
            sample_texture(p.detach().permute(1, 2, 0), uv, align_corners=False)
            for p in tex.pyramid
        )
        torch.testing.assert_close(tex(uv), ref.permute(0, 3, 1, 2), rtol=1e-5, atol=1e-5)
        tex(uv).sum().backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in tex.pyramid)

    def test_init_std(self):
        assert NeuralTexture(size=64, init_std=0.5).texture.std().item() == pytest.approx(
            0.5, rel=0.05
        )
        tex = NeuralTexture(size=64, channels=16, levels=4, init_std=0.5)
        for p in tex.pyramid:
            assert p.std().item() == pytest.approx(0.25, rel=0.15)

    def test_gradcheck(self):
        tex = NeuralTexture(size=4, channels=2, levels=2).double()
        uv = torch.rand(1, 3, 3, 2, dtype=torch.float64) * 0.8 + 0.1
        uv[0, 0, 0] = -1.0
        params = tuple(p.detach().clone().requires_grad_() for p in tex.pyramid)

        def fn(fine, coarse):
            state = {"pyramid.0": fine, "pyramid.1": coarse}
            return torch.func.functional_call(tex, state, (uv,))

        assert torch.autograd.gradcheck(fn, params)


# --------------------------------------------------------------------------------------------
# U-Nets


class TestRenderUNet:
    @pytest.mark.parametrize(
        ("conv", "size"), [("dilated", 64), ("dilated", 96), ("dilated", 50), ("strided", 64)]
    )
    def test_cardinality(self, conv, size, device):
        net = RenderUNet(small_unet(conv=conv)).to(device)
        x = torch.randn(2, 3, size, size + 16, device=device)
        y = net(x)
        assert y.shape == (2, 3, size, size + 16)
        assert y.abs().max() <= 1.0  # tanh

    def test_default_config(self):
        cfg = UNetConfig()
        net = RenderUNet(cfg)
        assert net.widths == [16, 32, 64, 128, 256]
        assert net(torch.randn(1, 16, 32, 32)).shape == (1, 3, 32, 32)
        assert net.size_multiple == 1
        assert RenderUNet(dataclasses.replace(cfg, conv="strided")).size_multiple == 16

    @pytest.mark.parametrize("act", ["sigmoid", "none"])
    def test_out_activation(self, act):
        net = RenderUNet(small_unet(out_activation=act, norm="none"))
        y = net(torch.randn(1, 3, 32, 32) * 10)
        if act == "sigmoid":
            assert y.min() >= 0 and y.max() <= 1
        assert y.shape == (1, 3, 32, 32)

    def test_exception(self):
        net = RenderUNet(small_unet(conv="strided"))
        with pytest.raises(ValueError, match="divisible by 16, got 72 x 64"):
            net(torch.randn(1, 3, 72, 64))
        with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
            net(torch.randn(1, 4, 64, 64))
        with pytest.raises(UNetConfigError, match="levels"):
            UNetConfig(levels=1)
        with pytest.raises(ConfigError, match="conv must be one of"):
            UNetConfig(conv="transposed")
        with pytest.raises(ValueError, match="max_width=8 is below base_width=16"):
            UNetConfig(max_width=8)

    def test_omegaconf_schema(self):
        schema = OmegaConf.structured(UNetConfig)
        cfg = OmegaConf.merge(schema, {"conv": "strided", "base_width": 4})
        net = RenderUNet(cfg)
        assert net.conv == "strided" and net.widths[0] == 4
        with pytest.raises(Exception, match="conv"):
            OmegaConf.merge(schema, {"conv": "transposed"})
        assert blending_config(cfg).in_channels == 6

    @pytest.mark.parametrize("base_width", [1, 4, 16, 32, 64])
    @pytest.mark.parametrize("norm", ["instance", "none", "batch"])
    def test_parameter_counts_identical(self, base_width, norm):
        kw = dict(in_channels=16, base_width=base_width, norm=norm)
        dilated = RenderUNet(UNetConfig(conv="dilated", **kw))
        strided = RenderUNet(UNetConfig(conv="strided", **kw))
        assert count_parameters(dilated) == count_parameters(strided)
        shapes_d = [(n, p.shape) for n, p in dilated.named_parameters()]
        shapes_s = [(n, p.shape) for n, p in strided.named_parameters()]
        assert shapes_d == shapes_s

    def test_parameter_count_formula(self):
        """Base width 16, instance norm: conv weights (no bias but the head) + norm affines."""
        w = [16, 32, 64, 128, 256]
        convs = [16 * w[0]] + [w[i - 1] * w[i] for i in range(1, 5)]
        convs += [(w[i + 1] + w[i]) * w[i] for i in range(1, 4)]
        expected = 9 * sum(convs) + 2 * (sum(w) + sum(w[1:4]))
        expected += 9 * (w[1] + w[0]) * 3 + 3  # head, with bias
        assert count_parameters(RenderUNet(UNetConfig(decoder="wide"))) == expected == 977_331
        # halving: decoder level i maps [v_{i+1}, e_i] to w_{i-1}; v_4 = w_4, v_i = w_{i-1}
        v = [w[0], w[0], w[1], w[2], w[4]]
        convs = [16 * w[0]] + [w[i - 1] * w[i] for i in range(1, 5)]
        convs += [(v[i + 1] + w[i]) * v[i] for i in range(1, 4)]
        expected = 9 * sum(convs) + 2 * (sum(w) + sum(v[1:4]))
        expected += 9 * (v[1] + w[0]) * 3 + 3
        assert count_parameters(RenderUNet(UNetConfig())) == expected

    def test_receptive_field_values(self):
        assert receptive_field(UNetConfig()) == 93
        assert receptive_field(UNetConfig(conv="strided")) == 97
        assert receptive_field(UNetConfig(conv="strided", upsample="nearest")) == 65
        for levels in (2, 3, 4, 5, 6):
            assert receptive_field(UNetConfig(levels=levels)) == 3 * 2**levels - 3

    def test_receptive_field_dilated_measured(self):
        cfg = UNetConfig(
            in_channels=1,
            out_channels=1,
            base_width=2,
            max_width=4,
            norm="none",
            out_activation="none",
        )
        net = randomize_(RenderUNet(cfg)).double()
        extents = gradient_extent(net, 128, range(62, 66))
        assert extents == [receptive_field(cfg)] * 4 == [93] * 4

    @pytest.mark.parametrize("upsample", ["bilinear", "nearest"])
    def test_receptive_field_strided_measured(self, upsample):
        """Strided: the extent depends on the position on the stride grid; the largest over a
        period is the analytical value."""
        cfg = UNetConfig(
            in_channels=1,
            out_channels=1,
            base_width=2,
            max_width=4,
            norm="none",
            out_activation="none",
            conv="strided",
            upsample=upsample,
        )
        net = randomize_(RenderUNet(cfg)).double()
        extents = gradient_extent(net, 160, range(80, 96))
        assert max(extents) == receptive_field(cfg)

    def test_memory_dilated_exceeds_strided(self):
        """Same parameters, but the dilated net keeps every level at full resolution."""

        def activations(conv: str) -> int:
            net = RenderUNet(small_unet(conv=conv))
            total = 0

            def hook(_m, _i, out):
                nonlocal total
                total += out.numel()

            for m in net.modules():
                if isinstance(m, torch.nn.Conv2d):
                    m.register_forward_hook(hook)
            net(torch.randn(1, 3, 64, 64))
            return total

        dilated, strided = activations("dilated"), activations("strided")
        assert dilated > 3 * strided

    @pytest.mark.parametrize("conv", ["dilated", "strided"])
    @pytest.mark.parametrize("norm", ["instance", "batch", "none"])
    def test_gradients_reach_every_parameter(self, conv, norm):
        net = RenderUNet(small_unet(conv=conv, norm=norm))
        y = net(torch.randn(2, 3, 32, 32))
        (y * torch.randn_like(y)).sum().backward()
        for name, p in net.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name

    def test_instance_norm_is_applied(self):
        """Encoder and decoder convolutions are normalised (the release dropped the encoder's):
        per-channel mean 0 and std 1 after every norm, and the output depends on the switch."""
        net = RenderUNet(small_unet(norm="instance"))
        stats = []

        def hook(_m, _i, out):
            stats.append((out.mean((2, 3)).abs().max().item(), out.std((2, 3)).mean().item()))

        norms = [m for m in net.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
        assert len(norms) == 5 + 3  # every encoder level and every decoder level but the head
        assert all(isinstance(block[1], torch.nn.InstanceNorm2d) for block in net.encoder)
        for m in norms:
            m.register_forward_hook(hook)
        x = torch.randn(1, 3, 48, 48) * 5 + 3
        y = net(x)
        assert len(stats) == 8
        for mean, std in stats:
            assert mean < 1e-4 and std == pytest.approx(1.0, abs=0.05)

        plain = RenderUNet(small_unet(norm="none"))
        with torch.no_grad():
            for block_n, block_p in zip(
                [*net.encoder, *net.decoder], [*plain.encoder, *plain.decoder], strict=True
            ):
                block_p[0].weight.copy_(block_n[0].weight)
                block_p[0].bias.zero_()
            plain.head.load_state_dict(net.head.state_dict())
        assert not torch.allclose(plain(x), y, atol=1e-3)

    def test_gradcheck(self):
        for conv in ("dilated", "strided"):
            cfg = small_unet(conv=conv, base_width=2, max_width=2, levels=3, in_channels=2)
            net = RenderUNet(cfg).double()
            x = torch.randn(1, 2, 8, 8, dtype=torch.float64, requires_grad=True)
            assert torch.autograd.gradcheck(net, (x,), atol=1e-6, fast_mode=True)


class TestBlending:
    def test_blending_config(self):
        base = UNetConfig(base_width=8, conv="strided", norm="batch")
        cfg = blending_config(base)
        assert cfg.in_channels == 6 and cfg.out_channels == 3
        assert (cfg.base_width, cfg.conv, cfg.norm) == (8, "strided", "batch")
        assert blending_config(base, with_mask=True).in_channels == 7

    def test_blending_input(self):
        eroded, rendered = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
        kept = torch.rand(2, 1, 16, 16) > 0.5
        assert blending_input(eroded, rendered).shape == (2, 6, 16, 16)
        x = blending_input(eroded, rendered, kept)
        assert x.shape == (2, 7, 16, 16)
        assert torch.equal(x[:, :3], eroded) and torch.equal(x[:, 6:], kept.float())
        net = RenderUNet(blending_config(small_unet(), with_mask=True))
        assert net(x).shape == (2, 3, 16, 16)
        with pytest.raises(ValueError, match="kept"):
            blending_input(eroded, rendered, kept[:, 0])


class TestErodeBackground:
    @staticmethod
    def naive_removed(face: np.ndarray, band: int) -> np.ndarray:
        """Square (Chebyshev) structuring element: removed iff a face pixel is within
        max(|dy|, |dx|) <= band."""
        h, w = face.shape
        out = np.zeros_like(face, dtype=bool)
        ys, xs = np.nonzero(face)
        for y in range(h):
            for x in range(w):
                out[y, x] = bool(np.any(np.maximum(np.abs(ys - y), np.abs(xs - x)) <= band))
        return out

    @pytest.mark.parametrize("band", [0, 1, 3, 7])
    def test_feature_naive(self, band):
        g = torch.Generator().manual_seed(band)
        face = torch.zeros(2, 1, 20, 24, dtype=torch.bool)
        face[0, 0, 6:11, 8:13] = True
        face[1] = torch.rand(1, 20, 24, generator=g) > 0.97
        frame = torch.rand(2, 3, 20, 24, generator=g) + 0.1
        eroded, kept = erode_background(frame, face, band)
        assert kept.shape == (2, 1, 20, 24) and kept.dtype == torch.bool
        for b in range(2):
            removed = self.naive_removed(face[b, 0].numpy(), band)
            assert np.array_equal(~kept[b, 0].numpy(), removed)
        assert torch.equal(eroded, torch.where(kept, frame, 0.0))
        assert (eroded[~kept.expand_as(frame)] == 0).all()
        assert not (kept & face).any()  # the face itself is always removed

    def test_float_mask_and_empty(self):
        frame = torch.rand(1, 3, 9, 9)
        soft = torch.zeros(1, 1, 9, 9)
        soft[0, 0, 4, 4] = 0.3
        _, kept = erode_background(frame, soft, 2)
        assert (~kept).sum() == 25
        eroded, kept = erode_background(frame, torch.zeros(1, 1, 9, 9), 3)
        assert kept.all() and torch.equal(eroded, frame)

    def test_exception(self):
        frame = torch.rand(1, 3, 9, 9)
        with pytest.raises(ValueError, match="band"):
            erode_background(frame, torch.zeros(1, 1, 9, 9), -1)
        with pytest.raises(ValueError, match="face_mask"):
            erode_background(frame, torch.zeros(1, 9, 9), 1)


# --------------------------------------------------------------------------------------------
# Losses


def naive_masked_l1(pred, target, mask) -> float:
    b, c, h, w = pred.shape
    total, count = 0.0, 0
    for i in range(b):
        for y in range(h):
            for x in range(w):
                if mask[i, 0, y, x]:
                    for k in range(c):
                        total += abs(float(pred[i, k, y, x]) - float(target[i, k, y, x]))
                        count += 1
    return total / count if count else 0.0


class TestMaskedL1:
    def test_feature_naive(self):
        pred, target = torch.randn(2, 3, 5, 6), torch.randn(2, 3, 5, 6)
        mask = torch.rand(2, 1, 5, 6) > 0.6
        assert masked_l1(pred, target, mask).item() == pytest.approx(
            naive_masked_l1(pred, target, mask), rel=1e-6
        )
        # a float 0/1 mask and a per-channel mask give the same
        assert masked_l1(pred, target, mask.float()) == masked_l1(pred, target, mask)
        full = mask.expand(2, 3, 5, 6)
        torch.testing.assert_close(masked_l1(pred, target, full), masked_l1(pred, target, mask))

    def test_feature_normalised_by_mask_area(self):
        pred, target = torch.randn(1, 3, 8, 8), torch.randn(1, 3, 8, 8)
        mask = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
        mask[..., 2:6, 1:5] = True
        value = masked_l1(pred, target, mask)
        # doubling the image area outside the mask leaves the value unchanged
        big = lambda t, fill: torch.cat([t, fill], dim=-1)  # noqa: E731
        value2 = masked_l1(
            big(pred, torch.randn(1, 3, 8, 8)),
            big(target, torch.randn(1, 3, 8, 8)),
            big(mask, torch.zeros(1, 1, 8, 8, dtype=torch.bool)),
        )
        torch.testing.assert_close(value, value2)
        # halving the (soft) mask halves the numerator and the normaliser alike
        torch.testing.assert_close(masked_l1(pred, target, 0.5 * mask.float()), value)
        # the mean over masked pixel values, not a sum normalised by the channel count
        err = (pred - target).abs() * mask
        torch.testing.assert_close(value, err.sum() / (mask.sum() * 3))
        assert not torch.isclose(value, err.sum() / 3)

    def test_empty_mask(self):
        pred = torch.randn(1, 3, 4, 4, requires_grad=True)
        value = masked_l1(pred, torch.randn(1, 3, 4, 4), torch.zeros(1, 1, 4, 4))
        assert value.item() == 0.0
        value.backward()
        assert torch.equal(pred.grad, torch.zeros_like(pred))

    def test_exception(self):
        with pytest.raises(ValueError, match="mask"):
            masked_l1(torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4), torch.ones(1, 2, 4, 4))
        with pytest.raises(ValueError, match="one shape"):
            masked_l1(torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 5), torch.ones(1, 1, 4, 4))

    def test_gradcheck(self):
        pred = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
        target = torch.randn(1, 2, 3, 3, dtype=torch.float64)
        mask = torch.rand(1, 1, 3, 3, dtype=torch.float64)
        assert torch.autograd.gradcheck(lambda p: masked_l1(p, target, mask), (pred,))


# --------------------------------------------------------------------------------------------
# VGG19

TORCHVISION_VGG19_CONVS = [
    (64, 3), (64, 64),
    (128, 64), (128, 128),
    (256, 128), (256, 256), (256, 256), (256, 256),
    (512, 256), (512, 512), (512, 512), (512, 512),
    (512, 512), (512, 512), (512, 512), (512, 512),
]  # fmt: skip
TORCHVISION_VGG19_CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]


def torchvision_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict in torchvision's vgg19 format (features.* and classifier.*)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for index, (c_out, c_in) in zip(
        TORCHVISION_VGG19_CONV_INDICES, TORCHVISION_VGG19_CONVS, strict=True
    ):
        std = (2.0 / (9 * c_in)) ** 0.5
        state[f"features.{index}.weight"] = torch.randn(c_out, c_in, 3, 3, generator=g) * std
        state[f"features.{index}.bias"] = torch.randn(c_out, generator=g) * 0.01
    state["classifier.0.weight"] = torch.zeros(4, 8)  # not the real shape: must be ignored
    state["classifier.0.bias"] = torch.zeros(4)
    state["classifier.6.weight"] = torch.zeros(10, 4)
    return state


@pytest.fixture(scope="module")
def vgg_state() -> dict[str, torch.Tensor]:
    return torchvision_state_dict()


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory, vgg_state):
    path = tmp_path_factory.mktemp("hub") / "vgg19-dcbb9e9d.pth"
    torch.save(vgg_state, path)
    return path


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub"


class TestVGG:
    def test_layout_matches_torchvision(self):
        features = vgg19_features()
        assert len(features) == 37
        convs = [(i, m) for i, m in enumerate(features) if isinstance(m, torch.nn.Conv2d)]
        assert [i for i, _ in convs] == TORCHVISION_VGG19_CONV_INDICES
        assert [tuple(m.weight.shape) for _, m in convs] == [
            (o, i, 3, 3) for o, i in TORCHVISION_VGG19_CONVS
        ]
        assert all(m.padding == (1, 1) for _, m in convs)
        pools = [i for i, m in enumerate(features) if isinstance(m, torch.nn.MaxPool2d)]
        assert pools == [4, 9, 18, 27, 36]
        assert count_parameters(features) == 20_024_384
        assert VGG19_LAYERS["relu1_2"] == 3 and VGG19_LAYERS["relu3_4"] == 17
        assert VGG19_LAYERS["relu4_4"] == 26 and VGG19_LAYERS["relu5_4"] == 35
        assert VGG19_LAYERS["conv5_4"] == 34 and VGG19_LAYERS["pool5"] == 36

    def test_load_torchvision_file(self, vgg_file, vgg_state):
        vgg = VGGFeatures(weights=vgg_file)
        assert len(vgg.features) == 36  # truncated after relu5_4
        for key, value in vgg.features.state_dict().items():
            assert torch.equal(value, vgg_state[f"features.{key}"])
        short = VGGFeatures(layers=("relu1_2", "relu2_2"), weights=str(vgg_file))
        assert len(short.features) == 9
        out = short(torch.rand(2, 3, 32, 32) * 2 - 1)
        assert list(out) == ["relu1_2", "relu2_2"]
        assert out["relu1_2"].shape == (2, 64, 32, 32) and out["relu2_2"].shape == (2, 128, 16, 16)

    def test_hub_cache(self, vgg_file, monkeypatch):
        monkeypatch.setattr(torch.hub, "get_dir", lambda: str(vgg_file.parent.parent))
        (vgg_file.parent.parent / "checkpoints").mkdir(exist_ok=True)
        target = vgg_file.parent.parent / "checkpoints" / vgg_file.name
        if not target.exists():
            target.symlink_to(vgg_file)
        assert default_vgg19_path() == target
        VGGFeatures(layers=("relu1_1",))

    def test_missing_file(self, tmp_path, empty_hub):
        missing = tmp_path / "nowhere" / "vgg19.pth"
        with pytest.raises(MissingDependencyError, match=r"nowhere/vgg19\.pth"):
            VGGFeatures(weights=missing)
        expected = str(empty_hub / "checkpoints" / "vgg19-dcbb9e9d.pth")
        with pytest.raises(MissingDependencyError, match=r"vgg19-dcbb9e9d\.pth") as info:
            VGGFeatures()
        assert expected in str(info.value) and "vgg_weight=0" in str(info.value)

    def test_bad_file(self, tmp_path, vgg_state):
        garbage = tmp_path / "vgg19.pth"
        garbage.write_bytes(b"<html>not found</html>")
        with pytest.raises(InputError, match="cannot read"):
            VGGFeatures(weights=garbage)
        wrong = dict(vgg_state)
        wrong["features.2.weight"] = torch.zeros(64, 64, 1, 1)
        del wrong["features.5.bias"]
        with pytest.raises(InputError, match=r"features.2.weight has shape .*features.5.bias"):
            VGGFeatures(weights=wrong)
        with pytest.raises(ValueError, match="unknown VGG19 layer"):
            VGGFeatures(layers=("relu6_1",), weights=vgg_state)

    def test_normalisation(self, vgg_state):
        sym = VGGFeatures(layers=("relu1_1",), weights=vgg_state)
        unit = VGGFeatures(layers=("relu1_1",), weights=vgg_state, input_range=(0, 1))
        x01 = torch.rand(1, 3, 8, 8)
        torch.testing.assert_close(sym(x01 * 2 - 1), unit(x01))
        grey = torch.full((1, 3, 1, 1), 0.5)
        mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
        torch.testing.assert_close(unit.normalize(grey).flatten(), (0.5 - mean) / std)
        torch.testing.assert_close(sym.normalize(grey * 0).flatten(), (0.5 - mean) / std)

    def test_frozen(self, vgg_state):
        vgg = VGGFeatures(layers=("relu2_1",), weights=vgg_state)
        assert count_parameters(vgg, trainable_only=True) == 0
        vgg.train()
        assert not vgg.training and not any(m.training for m in vgg.modules())
        x = torch.rand(1, 3, 8, 8, requires_grad=True)
        vgg(x)["relu2_1"].sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0

    def test_not_in_state_dict(self, vgg_state):
        cfg = RenderLossConfig(vgg_layers=["relu1_1"], vgg_layer_weights=[1.0])
        loss = RenderLoss(cfg, vgg=VGGFeatures(layers=("relu1_1",), weights=vgg_state))
        container = torch.nn.ModuleDict({"loss": loss, "lin": torch.nn.Linear(2, 2)})
        state = container.state_dict()
        assert list(state) == ["lin.weight", "lin.bias"]
        before = loss.perceptual.vgg.features[0].weight.clone()
        container.load_state_dict(state)  # strict: the VGG keys are not missing
        assert torch.equal(loss.perceptual.vgg.features[0].weight, before)


class TestRenderLoss:
    def test_no_vgg_needs_no_weights(self, empty_hub):
        loss = RenderLoss(RenderLossConfig(vgg_weight=0.0))
        assert loss.perceptual is None
        with pytest.raises(MissingDependencyError):
            RenderLoss(RenderLossConfig())

    def test_feature_hand_computed(self):
        # 1 x 3 x 1 x 2 images: pixel 0 is face, pixel 1 background
        target = torch.tensor([[[[0.0, 0.5]], [[0.0, 0.5]], [[0.0, 0.5]]]])
        final = target + torch.tensor([[[[0.1, -0.3]], [[0.1, -0.3]], [[0.1, -0.3]]]])
        inter = target + torch.tensor([[[[0.2, 1.0]], [[-0.4, 1.0]], [[0.0, 1.0]]]])
        mask = torch.tensor([[[[True, False]]]])
        cfg = RenderLossConfig(vgg_weight=0.0, l1_weight=2.0, face_l1_weight=0.5)
        out = RenderLoss(cfg)(final, inter, target, mask)
        assert out["l1"].item() == pytest.approx(0.2)  # (3 x 0.1 + 3 x 0.3) / 6
        assert out["face_l1"].item() == pytest.approx(0.2)  # (0.2 + 0.4 + 0) / 3
        assert out["vgg"].item() == 0.0 and out["ssim"].item() == 0.0
        assert out["loss"].item() == pytest.approx(2.0 * 0.2 + 0.5 * 0.2)
        assert RenderLoss(cfg)(final, None, target, mask)["face_l1"].item() == 0.0

    def test_feature_with_vgg(self, vgg_state):
        layers = ["relu1_2", "relu2_2"]
        vgg = VGGFeatures(layers=layers, weights=vgg_state)
        cfg = RenderLossConfig(vgg_layers=layers, vgg_layer_weights=[1.0, 0.5], vgg_weight=2.0)
        loss = RenderLoss(cfg, vgg=vgg)
        final, inter, target = (torch.rand(2, 3, 16, 16) * 2 - 1 for _ in range(3))
        final.requires_grad_()
        inter.requires_grad_()
        mask = torch.rand(2, 1, 16, 16) > 0.5
        out = loss(final, inter, target, mask)
        fa, fb = vgg(final), vgg(target)
        expected_vgg = sum(
            w * (fa[k] - fb[k]).abs().mean() for k, w in zip(layers, [1.0, 0.5], strict=True)
        )
        torch.testing.assert_close(out["vgg"], expected_vgg)
        torch.testing.assert_close(out["loss"], out["l1"] + out["face_l1"] + 2.0 * expected_vgg)
        out["loss"].backward()
        assert final.grad.abs().sum() > 0 and inter.grad.abs().sum() > 0
        per_layer = PerceptualLoss(vgg, [1.0, 0.5]).layer_losses(final, target)
        assert list(per_layer) == layers
        with pytest.raises(ValueError, match="input_range"):
            RenderLoss(cfg, vgg=VGGFeatures(layers, weights=vgg_state, input_range=(0, 1)))

    @pytest.mark.parametrize("ms_ssim", [False, True])
    def test_ssim_switch(self, ms_ssim):
        target = torch.rand(1, 3, 32, 32) * 2 - 1
        final = (target + 0.3 * torch.randn_like(target)).clamp(-1, 1)
        mask = torch.ones(1, 1, 32, 32)
        off = RenderLoss(RenderLossConfig(vgg_weight=0.0))(final, final, target, mask)
        cfg = RenderLossConfig(vgg_weight=0.0, ssim_weight=0.5, ms_ssim=ms_ssim)
        on = RenderLoss(cfg)(final, final, target, mask)
        assert off["ssim"].item() == 0.0 and 0 < on["ssim"].item() <= 2
        torch.testing.assert_close(on["loss"], off["loss"] + 0.5 * on["ssim"])
        same = RenderLoss(cfg)(target, target, target, mask)
        assert same["ssim"].item() == pytest.approx(0.0, abs=1e-5)
        expected = ssim_loss((final + 1) / 2, (target + 1) / 2, ms_ssim=ms_ssim)
        torch.testing.assert_close(on["ssim"], expected)

    def test_ssim_definition(self):
        import kornia

        a, b = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
        torch.testing.assert_close(ssim_loss(a, b), 2 * kornia.losses.ssim_loss(a, b, 11))

    def test_config(self):
        with pytest.raises(RenderLossConfigError, match="vgg_layer_weights has 1 values"):
            RenderLossConfig(vgg_layer_weights=[1.0])
        with pytest.raises(ConfigError, match="l1_weight"):
            RenderLossConfig(l1_weight=-1)
        with pytest.raises(ValueError, match="ssim_window"):
            RenderLossConfig(ssim_window=4)
        schema = OmegaConf.structured(RenderLossConfig)
        cfg = OmegaConf.merge(schema, {"vgg_weight": 0.0, "vgg_weights_path": "/x/vgg.pth"})
        assert RenderLoss(cfg).perceptual is None


def test_release_net_rebuild_matches_its_stated_size():
    """benchmarks/render_release.py's rebuild of the release net has the parameter counts
    METHOD.md gives (0.59 M at width 16, 9.38 M at 64), keeps the image size, and nvp's
    halving decoder is smaller than its wide one."""
    import importlib.util

    from nvp.config import CONF_DIR

    path = CONF_DIR.parent / "benchmarks" / "render_release.py"
    spec = importlib.util.spec_from_file_location("render_release", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert round(count_parameters(mod.release_unet(16)) / 1e6, 2) == 0.59
    assert round(count_parameters(mod.release_unet(64)) / 1e6, 2) == 9.38
    assert mod.release_unet(4)(torch.randn(1, 16, 37, 41)).shape == (1, 3, 37, 41)
    assert count_parameters(mod.nvp_unet(16)) < count_parameters(mod.nvp_unet(16, "wide"))
