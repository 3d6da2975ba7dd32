"""``NeuralRendererModule``: the LightningModule of the person-specific stage.

neural texture (sampled at the rasterized UVs) -> network 1 (dilated U-Net) -> face
image; eroded target frame + face image -> network 2 (same structure) -> final frame.
Images are in [-1, 1] inside the module and [0, 1] for the metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities import rank_zero_only

from nvp.errors import ConfigError
from nvp.metrics.image import image_metrics, update_image_metrics
from nvp.nets.texture import DynamicNeuralTexture, NeuralTexture
from nvp.nets.unet import RenderUNet, blending_config, build_network, erode_background
from nvp.render.config import RenderConfig
from nvp.render.losses import RenderLoss


class NeuralRendererModule(pl.LightningModule):
    """Neural texture + renderer U-Net + blending U-Net for one target.

    Args:
        cfg: the resolved :class:`RenderConfig` as a dict (saved as hyper-parameters). A
            ``renderer`` section without ``decoder`` (checkpoints written before that option)
            builds ``"wide"`` decoders, as those checkpoints were trained with.
        target: what the checkpoint was trained on: ``store`` (path), ``name``,
            ``face_model_hash``, ``size`` and ``expression_dim`` (K, needed by the dynamic
            texture), kept in the checkpoint.
    """

    def __init__(self, cfg: dict[str, Any], target: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        renderer = cfg.get("renderer") if isinstance(cfg, dict) else None
        if isinstance(renderer, dict) and "decoder" not in renderer:
            # a checkpoint written before `renderer.decoder` existed: its nets are "wide"
            cfg = {**cfg, "renderer": {**renderer, "decoder": "wide"}}
        self.cfg: RenderConfig = OmegaConf.to_object(
            OmegaConf.merge(OmegaConf.structured(RenderConfig), cfg)
        )
        c = self.cfg
        if c.blend_mode not in ("direct", "residual"):
            raise ConfigError(f"blend_mode must be 'direct' or 'residual', got {c.blend_mode!r}")
        t = c.texture
        if t.dynamic:
            k = (target or {}).get("expression_dim")
            if k is None:
                raise ValueError(
                    "texture.dynamic needs the number of expression coefficients: pass "
                    "target={'expression_dim': K, ...} (train_renderer takes it from the store)"
                )
            self.texture: NeuralTexture | DynamicNeuralTexture = DynamicNeuralTexture(
                int(k),
                size=t.size,
                channels=t.channels,
                intermediate_channels=t.intermediate_channels,
                levels=t.levels,
                kernel=t.kernel,
                scale=t.dynamic_scale,
            )
        else:
            self.texture = NeuralTexture(size=t.size, channels=t.channels, levels=t.levels)
        rcfg = OmegaConf.to_object(OmegaConf.structured(c.renderer))
        rcfg.in_channels = c.texture.channels
        rcfg.out_channels = 3
        self.renderer = build_network(rcfg)
        self.blender = None
        if c.blend:
            bcfg = blending_config(rcfg)
            if c.blend_width:
                bcfg.base_width = c.blend_width
            self.blender = RenderUNet(bcfg)
        object.__setattr__(self, "_criterion", None)  # built on first use (VGG weights)
        self.val_metrics = image_metrics(prefix="val/", extra=c.metrics)
        self._val_sample: dict[str, torch.Tensor] | None = None

    @property
    def dynamic(self) -> bool:
        """The texture depends on the expression (``forward`` needs ``expression``)."""
        return isinstance(self.texture, DynamicNeuralTexture)

    def forward(
        self,
        uv: torch.Tensor,
        image: torch.Tensor,
        face: torch.Tensor,
        expression: torch.Tensor | None = None,
    ) -> dict:
        """
        Args:
            uv: (B, H, W, 2) in [0, 1], -1 on background.
            image: (B, 3, H, W) target frame in [-1, 1] (its face region is removed before
                network 2 sees it).
            face: (B, 1, H, W) face mask in {0, 1}.
            expression: (B, K) expression coefficients of the rendered meshes; required by
                the dynamic texture, ignored by the static one.

        Returns:
            ``intermediate`` (network 1, face region meaningful), ``final`` (B, 3, H, W) in
            [-1, 1], and ``eroded`` (the background network 2 saw).
        """
        if self.dynamic:
            if expression is None:
                raise ValueError("this renderer has a dynamic texture: pass the expressions")
            feats = self.texture(uv, expression)
        else:
            feats = self.texture(uv)
        inter = self.renderer(feats)
        if self.blender is None:
            final = inter * face + image * (1 - face)
            return {"intermediate": inter, "final": final, "eroded": image * (1 - face)}
        eroded, _ = erode_background(image, face, self.cfg.data.band)
        final = self.blender(torch.cat([eroded, inter * face], dim=1))
        if self.cfg.blend_mode == "residual":
            final = (eroded + inter * face + final).clamp(-1.0, 1.0)
        return {"intermediate": inter, "final": final, "eroded": eroded}

    @property
    def criterion(self) -> RenderLoss:
        """The training loss, built on first use so that loading a checkpoint for inference
        never needs the VGG weights."""
        if (
            self._criterion is None
            or next(iter(self._criterion.buffers()), torch.empty(0, device=self.device)).device
            != self.device
        ):
            # kept out of the module tree: no (fixed) VGG weights in the checkpoints
            object.__setattr__(self, "_criterion", RenderLoss(self.cfg.loss).to(self.device))
        return self._criterion

    def _shared_step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        out = self(batch["uv"], batch["image"], batch["face"], batch.get("expression"))
        parts = self.criterion(
            out["final"], out["intermediate"], batch["image"], batch["face"], batch.get("mouth")
        )
        bs = batch["image"].shape[0]
        for k, v in parts.items():
            self.log(
                f"{stage}/{k}", v, batch_size=bs, sync_dist=stage != "train", prog_bar=k == "loss"
            )
        if stage == "val":
            pred = ((out["final"].float() + 1) / 2).clamp(0, 1)
            tgt = (batch["image"] + 1) / 2
            f = batch["face"]
            update_image_metrics(self.val_metrics, pred, tgt, f, batch.get("mouth"))
            if self._val_sample is None:
                self._val_sample = {
                    "target": tgt[:1].detach().cpu(),
                    "uv": batch["uv"][:1].detach().cpu(),
                    "intermediate": ((out["intermediate"][:1].float() + 1) / 2).clamp(0, 1).cpu(),
                    "final": pred[:1].detach().cpu(),
                    "face": f[:1].cpu(),
                }
        return parts["loss"]

    def training_step(self, batch, batch_idx):
        return self._shared_step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._shared_step(batch, "val")

    def on_validation_epoch_start(self) -> None:
        self._val_sample = None

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self.val_metrics.compute())
        self.val_metrics.reset()

    def configure_optimizers(self):
        o = self.cfg.optim
        nets = list(self.renderer.parameters())
        if self.blender is not None:
            nets += list(self.blender.parameters())
        return torch.optim.Adam(
            [
                {"params": self.texture.parameters(), "lr": o.texture_lr},
                {"params": nets, "lr": o.net_lr},
            ],
            betas=(o.beta1, o.beta2),
        )


def sample_grid(sample: dict[str, torch.Tensor]) -> np.ndarray:
    """One row ``target | UV | intermediate | output | |error| x 4`` as (H, 5W, 3) uint8."""
    tgt = sample["target"][0]
    uv = sample["uv"][0]
    valid = (uv[..., 0] >= 0).float()
    uv_img = torch.stack([uv[..., 0].clamp(0, 1), uv[..., 1].clamp(0, 1), 0.5 * valid]) * valid
    inter = sample["intermediate"][0] * sample["face"][0]
    final = sample["final"][0]
    err = ((final - tgt).abs() * 4).clamp(0, 1)
    row = torch.cat([tgt, uv_img, inter, final, err], dim=2)
    return (row.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


class SampleGrid(Callback):
    """After each validation: write the sample grid of the first validation frame as PNG in
    ``<run>/samples/`` and send it to loggers that take images (rank zero only)."""

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)

    @rank_zero_only
    def on_validation_epoch_end(self, trainer: pl.Trainer, module: NeuralRendererModule):
        if trainer.sanity_checking or module._val_sample is None:
            return
        from PIL import Image

        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"grid_epoch{trainer.current_epoch:03d}_step{trainer.global_step}.png"
        Image.fromarray(sample_grid(module._val_sample)).save(path)
        for lg in trainer.loggers:
            if hasattr(lg, "log_image"):
                lg.log_image(key="val/samples", images=[str(path)])
