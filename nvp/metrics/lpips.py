"""LPIPS (Zhang et al. 2018, "The unreasonable effectiveness of deep features as a perceptual
metric"), VGG variant, version 0.1, on nvp's own VGG16.

``d(x, y) = Σ_l mean_hw( w_l · (f̂_l(x) − f̂_l(y))² )`` over the VGG16 layers relu1_2, relu2_2,
relu3_3, relu4_3, relu5_3, where ``f̂`` are the activations divided by their Euclidean norm
over channels (+1e-10) at each pixel, and ``w_l`` (C_l,) the learned non-negative weights of
1 × 1 convolutions ``lin0 … lin4``.

Inputs are in [0, 1]; they are mapped to [-1, 1] and shifted / scaled by the ``lpips``
package's ScalingLayer (shift (-0.030, -0.088, -0.188), scale (0.458, 0.448, 0.450)). That
transform is exactly the ImageNet mean / std normalisation of the [-1, 1] images (shift =
2·mean − 1, scale = 2·std), which :class:`~nvp.nets.vgg.VGGFeatures` with
``input_range=(-1, 1)`` applies, so the features come from it.

Two weight files, read from given paths, never downloaded:

* torchvision's ImageNet VGG16 ``vgg16-397923af.pth`` (what the ``lpips`` package loads through
  ``torchvision.models.vgg16(pretrained=True)``); ``None`` looks in the torch hub cache;
* the linear layers ``weights/v0.1/vgg.pth`` of the ``lpips`` package (keys
  ``lin{0..4}.model.1.weight``, shapes (1, C_l, 1, 1)); ``None`` looks inside an installed
  ``lpips`` distribution.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from nvp.errors import InputError, MissingDependencyError
from nvp.io.files import read_state_dict, state_dict_problems, summarize_problems
from nvp.nets.vgg import VGGFeatures

__all__ = [
    "LPIPS",
    "LPIPS_CHANNELS",
    "LPIPS_LAYERS",
    "LPIPS_SCALE",
    "LPIPS_SHIFT",
    "LPIPSDistance",
    "default_lpips_lin_path",
]

LPIPS_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
"""The VGG16 layers LPIPS compares."""
LPIPS_CHANNELS = (64, 128, 256, 512, 512)
"""Channels of those layers (the ``lin`` weights' second dimension)."""
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
"""The ``lpips`` ScalingLayer: ``(x − shift) / scale`` for x in [-1, 1]."""

_LIN_SOURCE = (
    "the lpips package's lpips/weights/v0.1/vgg.pth (pip install lpips, or "
    "github.com/richzhang/PerceptualSimilarity)"
)


def default_lpips_lin_path() -> Path | None:
    """``weights/v0.1/vgg.pth`` inside an installed ``lpips`` distribution, or None.

    Found from the distribution's file list, without importing ``lpips`` (which would import
    torchvision).
    """
    from importlib import metadata

    try:
        dist = metadata.distribution("lpips")
    except metadata.PackageNotFoundError:
        return None
    for f in dist.files or []:
        if str(f).replace("\\", "/").endswith("weights/v0.1/vgg.pth"):
            return Path(str(dist.locate_file(f)))
    return None


def _load_lin(weights: str | Path | Mapping[str, Tensor] | None) -> list[Tensor]:
    """The five (1, C_l, 1, 1) weights, checked."""
    if isinstance(weights, Mapping):
        state, source = weights, "the given state dict"
    else:
        path = default_lpips_lin_path() if weights is None else Path(weights).expanduser()
        if path is None or not path.is_file():
            where = "(no lpips package installed to look in)" if path is None else "not found"
            raise MissingDependencyError(
                f"the LPIPS linear-layer weights are missing {where}: pass the path of "
                f"{_LIN_SOURCE} as lin_weights",
                path=path,
            )
        state = read_state_dict(path, _LIN_SOURCE)
        source = str(path)
    shapes = {f"lin{k}.model.1.weight": (1, c, 1, 1) for k, c in enumerate(LPIPS_CHANNELS)}
    if problems := state_dict_problems(state, shapes):
        raise InputError(
            f"{source} is not LPIPS v0.1 VGG linear-layer weights: "
            f"{summarize_problems(problems, most=len(shapes))}; expected {_LIN_SOURCE}"
        )
    return [state[key].detach().float().clone() for key in shapes]


class LPIPSDistance(nn.Module):
    """Per-image LPIPS distance (VGG, v0.1); frozen, always in eval mode.

    Args:
        vgg_weights: torchvision's ``vgg16-397923af.pth`` (path or state dict); None: the torch
            hub cache.
        lin_weights: the ``lpips`` package's ``weights/v0.1/vgg.pth`` (path or state dict);
            None: inside an installed ``lpips`` distribution.

    Raises:
        MissingDependencyError: a weight file does not exist (the message names it and where
            to get it).
        InputError: a file is unreadable or has the wrong keys / shapes.
    """

    def __init__(
        self,
        vgg_weights: str | Path | Mapping[str, Tensor] | None = None,
        lin_weights: str | Path | Mapping[str, Tensor] | None = None,
    ) -> None:
        super().__init__()
        lins = _load_lin(lin_weights)  # the small file first: its error is the cheaper one
        self.vgg = VGGFeatures(LPIPS_LAYERS, weights=vgg_weights, input_range=(-1, 1), arch="vgg16")
        for k, w in enumerate(lins):
            self.register_buffer(f"lin{k}", w, persistent=False)  # fixed: not checkpointed
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> LPIPSDistance:
        """Kept in eval mode whatever ``mode`` is (LPIPS has no dropout at evaluation)."""
        super().train(False)
        return self

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """LPIPS between two batches of images.

        Args:
            x, y: (B, 3, H, W) RGB in [0, 1]; H, W >= 16 (relu5_3 is at 1/16 resolution).

        Returns:
            (B,) distances (0 for identical images).
        """
        if x.shape != y.shape or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(
                f"expected two (B, 3, H, W) batches, got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        b = x.shape[0]
        feats = self.vgg(torch.cat([x, y]).float() * 2 - 1)
        total = x.new_zeros(b, dtype=torch.float32)
        for k, name in enumerate(LPIPS_LAYERS):
            f = feats[name]
            f = f / (f.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            d = (f[:b] - f[b:]).pow(2)
            w = getattr(self, f"lin{k}").view(1, -1, 1, 1)
            total = total + (d * w).sum(1).mean((1, 2))
        return total


class LPIPS(Metric):
    """Mean LPIPS (VGG, v0.1) over images; lower is better.

    ``update(pred, target)``: (B, 3, H, W) RGB in [0, 1]. ``compute()``: the mean over all
    images seen.

    Args:
        vgg_weights, lin_weights: as :class:`LPIPSDistance`; or pass ``net``.
        net: an :class:`LPIPSDistance` to share between metrics. Its fixed weights are not
            part of any ``state_dict()``.
    """

    full_state_update = False
    higher_is_better = False

    def __init__(
        self,
        vgg_weights: str | Path | Mapping[str, Tensor] | None = None,
        lin_weights: str | Path | Mapping[str, Tensor] | None = None,
        net: LPIPSDistance | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.net = net if net is not None else LPIPSDistance(vgg_weights, lin_weights)
        self.add_state("total", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor) -> None:
        with torch.no_grad():
            d = self.net(pred, target)
        self.total += d.sum().double()
        self.count += d.numel()

    def compute(self) -> Tensor:
        return (self.total / self.count.clamp(min=1)).float()
