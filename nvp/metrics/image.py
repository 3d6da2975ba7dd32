"""Image metrics over the full frame or a mask (colours in [0, 1])."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
        if self.n == 0:
            return torch.tensor(float("nan"))
        mse = self.sse / self.n
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


class SharpnessRatio(Metric):
    """Face-region sharpness of rendered against real images: the variance of the Laplacian.

    Per image, the luminance (ITU-R 601 weights, kornia) is filtered with the 3 x 3 Laplacian
    and the variance of the response is taken over the mask's pixels whose 3 x 3
    neighbourhood lies inside the mask (the mask eroded by one pixel, so the mask's own
    border never counts). The metric is ``mean_i var_i(pred) / mean_i var_i(target)`` over
    the images with at least two such pixels: 1 = as much fine detail as the real frames,
    < 1 softer (blur lowers it), > 1 noisier. Images without face pixels are skipped.

    ``update(pred, target, mask)``: (B, 3, H, W) in [0, 1]; mask (B, 1, H, W), > 0 inside.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for name in ("pred", "target", "n"):
            self.add_state(name, default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> None:
        vp, vt = laplacian_variance(pred, mask), laplacian_variance(target, mask)
        ok = torch.isfinite(vp) & torch.isfinite(vt)
        self.pred += vp[ok].double().sum()
        self.target += vt[ok].double().sum()
        self.n += ok.sum()

    def compute(self) -> Tensor:
        if self.n == 0 or self.target == 0:
            return torch.tensor(float("nan"))
        return (self.pred / self.target).float()


def laplacian_variance(image: Tensor, mask: Tensor | None = None) -> Tensor:
    """Variance of the 3 x 3 Laplacian of each image's luminance over a mask: (B,).

    Args:
        image: (B, 3, H, W) in [0, 1].
        mask: (B, 1, H, W) region (> 0 inside) or None (the whole image); it is eroded by one
            pixel, and pixels within one pixel of the image border never count.

    Returns:
        (B,) float32 variances (luminance units squared, of kornia's normalised Laplacian);
        NaN where fewer than two pixels remain.
    """
    import kornia

    grey = kornia.color.rgb_to_grayscale(image.float())
    lap = kornia.filters.laplacian(grey, kernel_size=3, border_type="replicate")
    m = _mask(mask, grey) > 0
    m = -torch.nn.functional.max_pool2d((~m).float(), 3, stride=1, padding=1) > -0.5
    m[..., :1, :] = m[..., -1:, :] = False
    m[..., :, :1] = m[..., :, -1:] = False
    w = m.float().flatten(1)
    x = lap.flatten(1)
    n = w.sum(1)
    mean = (x * w).sum(1) / n.clamp(min=1)
    var = (((x - mean[:, None]) ** 2) * w).sum(1) / (n - 1).clamp(min=1)
    return torch.where(n >= 2, var, torch.full_like(var, float("nan")))


def psnr_per_image(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """PSNR (dB) of each image over the pixels of its mask (``inf`` where identical): (B,).

    The per-image counterpart of :class:`MaskedPSNR` (for per-frame plots); inputs as there.
    """
    m = _mask(mask, pred)
    sse = (((pred - target) ** 2) * m).flatten(1).sum(1).double()
    n = (m.flatten(1).sum(1) * pred.shape[1]).double().clamp(min=1)
    return (10 * torch.log10(n / sse)).float()  # 1 / 0 = inf for identical images


#: The built-in image metrics, in report order.
BUILTIN = ("psnr", "psnr_face", "colour_l2", "colour_l2_face", "psnr_mouth", "sharpness", "ssim")


def extra_metrics(spec: Mapping[str, Any] | None) -> dict[str, Metric]:
    """Your own image metrics, named by reference: ``{name: "module:Class"}`` or ``{name:
    {"ref": "file.py:Class", "options": {...}}}`` (see :mod:`nvp.plugins`). Each class is a
    torchmetrics ``Metric`` built as ``Class(options)`` (options checked against its
    ``Config`` dataclass, None without one) whose ``update(pred, target, face, mouth)`` takes
    (B, 3, H, W) images in [0, 1] and (B, 1, H, W) masks (``mouth`` may be None).

    Raises:
        ConfigError: a name that clashes with a built-in metric, or a class that cannot be
            loaded or is not a torchmetrics Metric.
    """
    from nvp.errors import ConfigError
    from nvp.plugins import load_object, plugin_options

    out: dict[str, Metric] = {}
    for name, item in (spec or {}).items():
        ref, options = (item, {}) if isinstance(item, str) else (item["ref"], item.get("options"))
        if name in BUILTIN:
            raise ConfigError(f"metrics.{name}: the name of a built-in metric")
        cls = load_object(ref, f"metrics.{name}")
        if not (isinstance(cls, type) and issubclass(cls, Metric)):
            raise ConfigError(f"metrics.{name}={ref!r} is not a torchmetrics Metric class")
        metric = cls(plugin_options(cls, options, f"metrics.{name}.options"))
        metric.nvp_masks = True  # updated with the face and mouth masks
        out[str(name)] = metric
    return out


def image_metrics(prefix: str = "", extra: Mapping[str, Any] | None = None) -> MetricCollection:
    """The image metrics of self-reenactment, used by renderer validation and ``nvp evaluate``:
    ``psnr`` and ``colour_l2`` over the full frame, ``psnr_face`` and ``colour_l2_face`` over
    the face mask, ``psnr_mouth`` over the mouth region (lips and mouth interior of the
    tracked mesh), ``sharpness`` (:class:`SharpnessRatio` over the face mask), ``ssim``, and
    the ``extra`` ones (:func:`extra_metrics`). Update them with :func:`update_image_metrics`."""
    from torchmetrics.image import StructuralSimilarityIndexMeasure

    return MetricCollection(
        {
            "psnr": MaskedPSNR(),
            "psnr_face": MaskedPSNR(),
            "colour_l2": MeanColourL2(),
            "colour_l2_face": MeanColourL2(),
            "psnr_mouth": MaskedPSNR(),
            "sharpness": SharpnessRatio(),
            "ssim": StructuralSimilarityIndexMeasure(data_range=1.0),
            **extra_metrics(extra),
        },
        prefix=prefix or None,
    )


def update_image_metrics(
    metrics: MetricCollection,
    pred: Tensor,
    target: Tensor,
    face: Tensor,
    mouth: Tensor | None = None,
) -> None:
    """Add a batch to :func:`image_metrics`: (B, 3, H, W) in [0, 1], face and mouth masks
    (B, 1, H, W). Without ``mouth`` the mouth metric is not updated (it then reads NaN)."""
    for name, metric in metrics.items(keep_base=True):
        if getattr(metric, "nvp_masks", False):
            metric.update(pred, target, face, mouth)
        elif name.endswith("_mouth"):
            if mouth is not None:
                metric.update(pred, target, mouth)
        elif name.endswith(("_face", "sharpness")):
            metric.update(pred, target, face)
        else:
            metric.update(pred, target)
