"""Image metrics over the full frame or a mask (colours in [0, 1])."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric, MetricCollection


def _mask(mask: Tensor | None, like: Tensor) -> Tensor:
    if mask is None:
        return torch.ones_like(like[:, :1])
    return mask.to(like.dtype).expand(like.shape[0], 1, *like.shape[2:])


class MaskedPSNR(Metric):
    """PSNR (dB) over the pixels of a mask, pooled over all images: ``10 log10(1 / MSE)`` with
    the MSE over every masked pixel value; identical images give ``inf``.

    ``update(pred, target, mask=None)``: (B, C, H, W) in [0, 1]; mask (B, 1, H, W) or None.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("sse", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("n", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> None:
        m = _mask(mask, pred)
        self.sse += (((pred - target) ** 2) * m).sum().double()
        self.n += m.sum().double() * pred.shape[1]

    def compute(self) -> Tensor:
        mse = self.sse / self.n.clamp(min=1)
        if mse == 0:
            return torch.tensor(float("inf"))
        return (10 * torch.log10(1.0 / mse)).float()


class MeanColourL2(Metric):
    """Mean over (masked) pixels of the Euclidean RGB distance ``||c - c*||_2``, colours in
    [0, 1] (the paper's "mean colour difference").

    ``update(pred, target, mask=None)``: (B, 3, H, W); mask (B, 1, H, W) or None.
    """

    full_state_update = False
    higher_is_better = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("n", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> None:
        m = _mask(mask, pred)[:, 0]
        d = (pred - target).norm(dim=1)
        self.total += (d * m).sum().double()
        self.n += m.sum().double()

    def compute(self) -> Tensor:
        return (self.total / self.n.clamp(min=1)).float()


def psnr_per_image(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """PSNR (dB) of each image over the pixels of its mask (``inf`` where identical): (B,).

    The per-image counterpart of :class:`MaskedPSNR` (for per-frame plots); inputs as there.
    """
    m = _mask(mask, pred)
    sse = (((pred - target) ** 2) * m).flatten(1).sum(1).double()
    n = (m.flatten(1).sum(1) * pred.shape[1]).double().clamp(min=1)
    return (10 * torch.log10(n / sse)).float()  # 1 / 0 = inf for identical images


def image_metrics(prefix: str = "") -> MetricCollection:
    """The image metrics of self-reenactment, used by renderer validation and ``nvp evaluate``:
    ``psnr`` and ``colour_l2`` over the full frame, ``psnr_face`` and ``colour_l2_face`` over
    the face mask, ``ssim``. Update them with :func:`update_image_metrics`."""
    from torchmetrics.image import StructuralSimilarityIndexMeasure

    return MetricCollection(
        {
            "psnr": MaskedPSNR(),
            "psnr_face": MaskedPSNR(),
            "colour_l2": MeanColourL2(),
            "colour_l2_face": MeanColourL2(),
            "ssim": StructuralSimilarityIndexMeasure(data_range=1.0),
        },
        prefix=prefix or None,
    )


def update_image_metrics(
    metrics: MetricCollection, pred: Tensor, target: Tensor, face: Tensor
) -> None:
    """Add a batch to :func:`image_metrics`: (B, 3, H, W) in [0, 1], face (B, 1, H, W)."""
    for name, metric in metrics.items(keep_base=True):
        if name.endswith("_face"):
            metric.update(pred, target, face)
        else:
            metric.update(pred, target)
