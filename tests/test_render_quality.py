"""Sharper renders: the dynamic neural texture, the sharpening losses, the sharpness measure."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import make_tiny_target

from nvp.cli import main
from nvp.config import CONF_DIR
from nvp.data.store import find_stores
from nvp.metrics.image import SharpnessRatio, image_metrics, laplacian_variance
from nvp.nets.texture import DynamicNeuralTexture, NeuralTexture
from nvp.render.losses import (
    RenderLoss,
    RenderLossConfig,
    gradient_l1,
    laplacian_pyramid_l1,
    masked_l1,
)


def _uv(b: int, h: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    uv = torch.rand(b, h, h, 2, generator=g)
    uv[:, : h // 4, : h // 4] = -1  # background
    return uv


class TestDynamicTexture:
    def _texture(self, k: int = 6, c: int = 4, ci: int = 5) -> DynamicNeuralTexture:
        torch.manual_seed(0)
        t = DynamicNeuralTexture(k, size=16, channels=c, intermediate_channels=ci, scale=0.5)
        torch.nn.init.normal_(t.mlp[-1].weight, std=0.3)  # an expression-dependent filter
        t.set_expression_stats(torch.randn(50, k) * 3 + 1)
        return t

    def test_batched_equals_naive_per_frame_loop(self):
        t = self._texture()
        uv, e = _uv(3, 12), torch.randn(3, 6) * 3
        out = t(uv, e)
        tex = t.base_texture.dense()
        for b in range(3):  # the release's way: one frame at a time, written out
            z = (e[b] - t.mean) / t.std
            h = F.leaky_relu(t.mlp[0](z), 0.02)
            h = F.leaky_relu(t.mlp[2](h), 0.02)
            w = t.base + 0.5 * torch.tanh(t.mlp[4](h)).view(4, 5, 3, 3)
            filtered = F.conv2d(tex[None], w, padding=1)
            grid = 2 * uv[b : b + 1].clamp(min=0) - 1
            s = F.grid_sample(filtered, grid, "bilinear", "border", align_corners=False)[0]
            s = s * (uv[b, ..., 0] >= 0)
            torch.testing.assert_close(out[b], s, atol=1e-5, rtol=1e-5)
        assert out[:, :, 0, 0].abs().max() == 0  # background is exactly zero

    def test_frames_differ_by_expression_and_gradients_reach_every_part(self):
        t = self._texture()
        uv = _uv(1, 12).expand(2, -1, -1, -1)
        out = t(uv, torch.stack([torch.zeros(6), torch.full((6,), 4.0)]))
        assert (out[0] - out[1]).abs().max() > 1e-3
        out.square().mean().backward()
        for name, p in t.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name

    def test_starts_as_the_static_texture(self):
        torch.manual_seed(1)
        t = DynamicNeuralTexture(4, size=16, channels=3, intermediate_channels=3)
        static = NeuralTexture(16, 3)
        static.pyramid[0].data.copy_(t.base_texture.texture.data)
        uv = _uv(2, 10)
        torch.testing.assert_close(t(uv, torch.randn(2, 4)), static(uv))

    def test_bad_inputs(self):
        t = self._texture()
        with pytest.raises(ValueError, match="expression must be"):
            t(_uv(2, 8), torch.zeros(2, 5))
        with pytest.raises(ValueError, match="rows"):
            t(_uv(2, 8), torch.zeros(3, 6))
        with pytest.raises(ValueError, match="odd"):
            DynamicNeuralTexture(4, kernel=4)


def _sobel_naive(x: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (C, 2, H, W) Sobel x/y, normalised by 8, replicate border."""
    kx = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float64) / 8
    p = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")
    h, w = x.shape[1:]
    out = np.zeros((x.shape[0], 2, h, w))
    for dy in range(3):
        for dx in range(3):
            win = p[:, dy : dy + h, dx : dx + w]
            out[:, 0] += kx[dy, dx] * win
            out[:, 1] += kx.T[dy, dx] * win
    return out


class TestLosses:
    def test_gradient_l1_against_naive(self):
        g = torch.Generator().manual_seed(0)
        a, b = torch.rand(2, 3, 9, 11, generator=g), torch.rand(2, 3, 9, 11, generator=g)
        ref = np.mean(
            [
                np.abs(_sobel_naive(a[i].double().numpy()) - _sobel_naive(b[i].double().numpy()))
                for i in range(2)
            ]
        )
        assert float(gradient_l1(a, b)) == pytest.approx(ref, rel=1e-5)
        assert float(gradient_l1(a, a + 0.3)) == pytest.approx(0.0, abs=1e-6)  # offsets: no edge

    def test_laplacian_pyramid_l1(self):
        g = torch.Generator().manual_seed(0)
        x = torch.rand(1, 3, 64, 64, generator=g)
        assert float(laplacian_pyramid_l1(x, x)) == 0
        y = torch.rand(1, 3, 64, 64, generator=g)
        assert float(laplacian_pyramid_l1(x, y, levels=1)) == pytest.approx(
            float((x - y).abs().mean())
        )
        # a blur and a brightness offset with the same pixel l1: the pyramid ranks the blur worse
        from kornia.filters import gaussian_blur2d

        blur = gaussian_blur2d(x, (7, 7), (2.0, 2.0))
        shift = x + (blur - x).abs().mean()
        assert float((blur - x).abs().mean()) == pytest.approx(float((shift - x).abs().mean()))
        assert laplacian_pyramid_l1(blur, x) > 1.1 * laplacian_pyramid_l1(shift, x)

    def test_mouth_term(self):
        g = torch.Generator().manual_seed(0)
        final, inter, tgt = (torch.rand(2, 3, 16, 16, generator=g) * 2 - 1 for _ in range(3))
        face = torch.ones(2, 1, 16, 16)
        mouth = torch.zeros(2, 1, 16, 16)
        mouth[..., 8:12, 4:12] = 1
        loss = RenderLoss(RenderLossConfig(vgg_weight=0, mouth_weight=2.0))
        parts = loss(final, inter, tgt, face, mouth)
        expect = masked_l1(final, tgt, mouth) + masked_l1(inter, tgt, mouth)
        assert float(parts["mouth_l1"]) == pytest.approx(float(expect))
        assert float(parts["loss"]) == pytest.approx(
            float(parts["l1"] + parts["face_l1"] + 2.0 * expect)
        )
        with pytest.raises(ValueError, match="mouth mask"):
            loss(final, inter, tgt, face)

    def test_config_checks(self):
        with pytest.raises(ValueError, match="laplacian_levels"):
            RenderLossConfig(laplacian_levels=0)
        with pytest.raises(ValueError, match="gradient_weight"):
            RenderLossConfig(gradient_weight=-1)


class TestSharpness:
    def test_laplacian_variance_against_naive(self):
        g = torch.Generator().manual_seed(0)
        img = torch.rand(1, 3, 12, 14, generator=g)
        mask = torch.zeros(1, 1, 12, 14)
        mask[..., 2:10, 3:12] = 1
        grey = (0.299 * img[0, 0] + 0.587 * img[0, 1] + 0.114 * img[0, 2]).double().numpy()
        p = np.pad(grey, 1, mode="edge")
        lap = sum(p[dy : dy + 12, dx : dx + 14] for dy in range(3) for dx in range(3)) - 9 * grey
        lap /= 16  # kornia's normalised kernel: ones, -8 in the centre, / 16
        inner = np.zeros((12, 14), bool)
        inner[3:9, 4:11] = True  # the mask eroded by one pixel
        ref = lap[inner].var(ddof=1)
        assert float(laplacian_variance(img, mask)[0]) == pytest.approx(ref, rel=1e-4)
        assert torch.isnan(laplacian_variance(img, torch.zeros(1, 1, 12, 14)))[0]

    def test_ratio(self):
        from kornia.filters import gaussian_blur2d

        g = torch.Generator().manual_seed(0)
        x = gaussian_blur2d(torch.rand(2, 3, 32, 32, generator=g), (5, 5), (1.0, 1.0))
        face = torch.ones(2, 1, 32, 32)

        def ratio(pred):
            m = SharpnessRatio()
            m.update(pred, x, face)
            return float(m.compute())

        assert ratio(x) == pytest.approx(1.0)
        assert ratio(gaussian_blur2d(x, (5, 5), (1.5, 1.5))) < 0.3
        assert ratio((x + 0.1 * torch.rand(2, 3, 32, 32, generator=g)).clamp(0, 1)) > 1.5
        assert np.isnan(float(SharpnessRatio().compute()))  # nothing seen

    def test_image_metrics_without_mouth_mask(self):
        x = torch.rand(1, 3, 16, 16)
        from nvp.metrics.image import update_image_metrics

        m = image_metrics()
        update_image_metrics(m, x, x * 0.9, torch.ones(1, 1, 16, 16))
        v = m.compute()
        assert torch.isnan(v["psnr_mouth"]) and torch.isfinite(v["psnr"])


def test_dynamic_texture_trains_resumes_and_reenacts(a2e_dataset, tmp_path):
    """The dynamic texture end to end at tiny size: train, resume, make a target, reenact."""
    store = find_stores(a2e_dataset)[0]
    tiny = str(CONF_DIR / "render" / "tiny.yaml")
    dyn = ["texture.dynamic=true", "loss.mouth_weight=1", "loss.laplacian_weight=1"]
    args = ["train-renderer", str(store), "--config", tiny, *dyn, "trainer.max_steps=-1"]
    assert (
        main([*args, f"out={tmp_path}/a", "trainer.max_epochs=1", "trainer.limit_train_batches=2"])
        == 0
    )
    (run,) = (tmp_path / "a").glob("render-*")
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    k = ckpt["hyper_parameters"]["target"]["expression_dim"]
    assert ckpt["state_dict"]["texture.mean"].shape == (k,)
    assert ckpt["state_dict"]["texture.std"].min() > 0  # set from the training frames
    assert (
        main(
            [
                *args,
                f"out={tmp_path}/b",
                "trainer.max_epochs=2",
                "trainer.limit_train_batches=2",
                f"resume={run}",
            ]
        )
        == 0
    )
    (run2,) = (tmp_path / "b").glob("render-*")
    ckpt2 = torch.load(run2 / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt2["global_step"] == 4
    target = make_tiny_target(a2e_dataset, tmp_path, renderer=run2)
    from nvp.io.audio import write_wav
    from nvp.io.synthetic import speech_audio
    from nvp.io.video import probe

    wav = tmp_path / "s.wav"
    write_wav(wav, speech_audio(1.5, 16000, seed=3), 16000)
    out = tmp_path / "out.mp4"
    code = main(
        [
            "reenact",
            "--target",
            str(target),
            "--audio",
            str(wav),
            "--out",
            str(out),
            "--device",
            "cpu",
            "min_speech_seconds=0",
        ]
    )
    assert code == 0 and probe(out).n_frames > 0
    from nvp.reenact.target import load_target

    t = load_target(target, device="cpu")
    assert t.renderer.dynamic
    from nvp.reenact.pipeline import FrameRenderer

    with pytest.raises(ValueError, match="dynamic"):
        fr = FrameRenderer(t)
        uv, mask = fr.raster(np.arange(2), None)
        fr.render(uv, mask, fr.frames(np.arange(2)))


def test_residual_blending_passes_the_composite_through():
    """blend_mode=residual: a blending network that outputs 0 leaves the plain composite
    (kept background + network 1's face); direct blending would output 0 itself."""
    from omegaconf import OmegaConf

    from nvp.config import load
    from nvp.render.config import RenderConfig
    from nvp.render.module import NeuralRendererModule

    def module(mode: str) -> NeuralRendererModule:
        cfg = load(RenderConfig, "render/tiny.yaml", cli=[f"blend_mode={mode}", "data.band=2"])
        m = NeuralRendererModule(OmegaConf.to_container(cfg))
        torch.nn.init.zeros_(m.blender.head.weight)
        torch.nn.init.zeros_(m.blender.head.bias)
        return m

    g = torch.Generator().manual_seed(0)
    uv = torch.rand(2, 16, 16, 2, generator=g)
    face = torch.zeros(2, 1, 16, 16)
    face[..., 4:12, 4:12] = 1
    uv[face[:, 0] == 0] = -1
    image = torch.rand(2, 3, 16, 16, generator=g) * 2 - 1
    out = module("residual")(uv, image, face)
    composite = out["eroded"] + out["intermediate"] * face
    torch.testing.assert_close(out["final"], composite.clamp(-1, 1))
    kept = out["eroded"].abs().sum(1, keepdim=True) > 0
    torch.testing.assert_close(out["final"] * kept, image * kept)  # the background, exactly
    assert module("direct")(uv, image, face)["final"].abs().max() == 0
    from nvp.errors import ConfigError

    with pytest.raises(ConfigError, match="blend_mode"):
        NeuralRendererModule(
            OmegaConf.to_container(load(RenderConfig, "render/tiny.yaml", cli=["blend_mode=x"]))
        )
