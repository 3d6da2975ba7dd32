"""The renderer system: image metrics, frames data, training smoke runs, resume, checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nvp.cli import main
from nvp.config import CONF_DIR
from nvp.data.store import find_stores
from nvp.metrics import MaskedPSNR, MeanColourL2
from nvp.render.config import RenderDataConfig
from nvp.render.data import RendererDataModule, RendererFrames
from nvp.render.module import sample_grid


class TestImageMetrics:
    def test_psnr_known_and_identical(self):
        a = torch.rand(2, 3, 8, 8)
        m = MaskedPSNR()
        m.update(a, a)
        assert torch.isinf(m.compute())
        m = MaskedPSNR()
        m.update(a, (a + 0.1).clamp(max=10))  # MSE 0.01 -> 20 dB
        torch.testing.assert_close(m.compute(), torch.tensor(20.0), rtol=1e-4, atol=1e-4)

    def test_masked_psnr_ignores_outside(self):
        a = torch.zeros(1, 3, 4, 4)
        b = a.clone()
        b[..., :2] = 1.0  # wrong only in the left half
        mask = torch.zeros(1, 1, 4, 4)
        mask[..., 2:] = 1
        m = MaskedPSNR()
        m.update(a, b, mask)
        assert torch.isinf(m.compute())

    def test_colour_l2_naive(self):
        a, b = torch.rand(2, 3, 5, 5), torch.rand(2, 3, 5, 5)
        mask = (torch.rand(2, 1, 5, 5) > 0.5).float()
        m = MeanColourL2()
        m.update(a, b, mask)
        d = [
            float(torch.linalg.norm(a[i, :, y, x] - b[i, :, y, x]))
            for i in range(2)
            for y in range(5)
            for x in range(5)
            if mask[i, 0, y, x] > 0
        ]
        torch.testing.assert_close(m.compute(), torch.tensor(np.mean(d), dtype=torch.float32))


@pytest.fixture(scope="module")
def store(tiny_dataset) -> Path:
    return find_stores(tiny_dataset)[0]


class TestFrames:
    def test_items_and_crops(self, store):
        ds = RendererFrames(store, np.arange(4), crop=32, seed=0)
        item = ds[1]
        assert item["image"].shape == (3, 32, 32) and item["uv"].shape == (32, 32, 2)
        assert item["image"].min() >= -1 and item["image"].max() <= 1
        valid = item["uv"][..., 0] >= 0
        assert torch.equal(valid, item["face"][0] > 0)  # UVs and mask cut at the same square
        full = RendererFrames(store, np.arange(4))[1]
        assert full["image"].shape == (3, 96, 96)

    def test_datamodule_splits(self, store):
        dm = RendererDataModule(store, RenderDataConfig(max_val_frames=3))
        assert len(dm.val_frames) == 3
        assert dm.train_frames.max() < dm.val_frames.min()

    def test_crop_too_large(self, store):
        from nvp.errors import InputError

        with pytest.raises(InputError, match="crop"):
            RendererDataModule(store, RenderDataConfig(crop=512))


def _render_configs() -> list[list[str]]:
    runs = [
        [],
        [
            "--config",
            str(CONF_DIR / "render" / "paper.yaml"),
            "loss.vgg_weight=0",
            "trainer.precision=32-true",
        ],
    ]
    for exp in sorted((CONF_DIR / "experiment").glob("render_*.yaml")):
        runs.append(["--config", str(exp)])
    return runs


@pytest.mark.parametrize(
    "extra", _render_configs(), ids=lambda e: Path(e[1]).stem if len(e) > 1 else "cpu"
)
def test_two_step_smoke(store, tmp_path, extra):
    tiny = str(CONF_DIR / "render" / "tiny.yaml")
    code = main(["train-renderer", str(store), *extra, "--config", tiny, f"out={tmp_path}"])
    assert code == 0
    (run,) = list(tmp_path.glob("render-*"))
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 2
    target = ckpt["hyper_parameters"]["target"]
    assert target["name"] == store.name.removesuffix(".zarr") and target["face_model_hash"]


def test_resume_and_sample_grid(store, tmp_path):
    tiny = str(CONF_DIR / "render" / "tiny.yaml")
    assert (
        main(
            [
                "train-renderer",
                str(store),
                "--config",
                tiny,
                f"out={tmp_path}/a",
                "trainer.max_steps=-1",
                "trainer.max_epochs=1",
                "trainer.limit_train_batches=2",
            ]
        )
        == 0
    )
    (run,) = list((tmp_path / "a").glob("render-*"))
    grids = list((run / "samples").glob("*.png"))
    assert grids
    from PIL import Image

    assert Image.open(grids[0]).size == (5 * 96, 96)
    assert (
        main(
            [
                "train-renderer",
                str(store),
                "--config",
                tiny,
                f"out={tmp_path}/b",
                "trainer.max_steps=-1",
                "trainer.max_epochs=2",
                "trainer.limit_train_batches=2",
                f"resume={run}",
            ]
        )
        == 0
    )
    (run2,) = list((tmp_path / "b").glob("render-*"))
    ckpt = torch.load(run2 / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 4 and ckpt["epoch"] == 1
    metrics = (run2 / "logs" / "metrics.csv").read_text()
    assert "val/psnr_face" in metrics and "val/ssim" in metrics


def test_vgg_without_weights_fails_clearly(store, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    tiny = str(CONF_DIR / "render" / "tiny.yaml")
    code = main(
        ["train-renderer", str(store), "--config", tiny, f"out={tmp_path}", "loss.vgg_weight=1.0"]
    )
    assert code == 1
    assert "vgg19" in capsys.readouterr().err.lower()


def test_sample_grid_layout():
    s = {
        "target": torch.rand(1, 3, 8, 8),
        "uv": torch.full((1, 8, 8, 2), -1.0),
        "intermediate": torch.rand(1, 3, 8, 8),
        "final": torch.rand(1, 3, 8, 8),
        "face": torch.zeros(1, 1, 8, 8),
    }
    g = sample_grid(s)
    assert g.shape == (8, 40, 3) and g.dtype == np.uint8
    assert (g[:, 8:24] == 0).all()  # UV and intermediate are blank outside the face
