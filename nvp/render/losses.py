"""Losses of the neural rendering stage.

``L = l1_weight · ℓ1(I, I*) + face_l1_weight · ℓ1_face(Î, I*) + vgg_weight · VGG(I, I*)
+ ssim_weight · (1 − SSIM(I, I*)) + gradient_weight · ℓ1(∇I, ∇I*)
+ laplacian_weight · Lap1(I, I*) + mouth_weight · (ℓ1_mouth(I, I*) + ℓ1_mouth(Î, I*))``
(paper, §5.2: the first three with weight 1, the others off), with ``I`` the final image of
the blending network, ``Î`` the intermediate image of the renderer network (its term
restricted to the face region) and ``I*`` the target frame.

The last three sharpen without ImageNet weights: the image-gradient term compares kornia's
Sobel gradients, ``Lap1`` the levels of a Laplacian pyramid (:func:`laplacian_pyramid_l1`),
and the mouth term adds an ℓ1 over the mouth region (lips and mouth interior), where the
teeth are.

Conventions: images are ``(B, 3, H, W)`` float in ``[-1, 1]`` (the range of the renderer's tanh
output); the ℓ1 terms are measured in that range, the VGG features and the SSIM on the images
mapped to ``[0, 1]`` (the VGG then applies the ImageNet normalisation). Every ℓ1 is a mean
over pixel values: the masked one divides by the number of masked pixel values
(mask area × channels), not by the channel count alone, the authors' release's defect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import kornia
import torch
from torch import Tensor, nn

from nvp.errors import ConfigError
from nvp.nets.vgg import VGG19_LAYERS, VGGFeatures

__all__ = [
    "PerceptualLoss",
    "RenderLoss",
    "RenderLossConfig",
    "RenderLossConfigError",
    "gradient_l1",
    "laplacian_pyramid_l1",
    "masked_l1",
    "ssim_loss",
    "validate_render_loss_config",
]


class RenderLossConfigError(ConfigError, ValueError):
    """An invalid :class:`RenderLossConfig`; a ConfigError and a ValueError."""


@dataclass
class RenderLossConfig:
    """Weights and settings of :class:`RenderLoss`. The defaults are the paper's loss."""

    l1_weight: float = 1.0
    """Weight of the ℓ1 distance between the final image and the target (whole image)."""

    face_l1_weight: float = 1.0
    """Weight of the ℓ1 distance between the renderer network's intermediate image and the
    target, over the face region only (:func:`masked_l1`)."""

    vgg_weight: float = 1.0
    """Weight of the perceptual (VGG19 feature) loss on the final image; 0 turns it off, and
    then no VGG weights are needed."""

    vgg_weights_path: str | None = None
    """torchvision's ``vgg19-dcbb9e9d.pth``; ``None`` looks in the torch hub cache
    (``<torch.hub.get_dir()>/checkpoints/``). Never downloaded."""

    vgg_layers: list[str] = field(
        default_factory=lambda: ["relu1_2", "relu2_2", "relu3_4", "relu4_4", "relu5_4"]
    )
    """VGG19 layers compared by the perceptual loss (names as ``relu3_4``)."""

    vgg_layer_weights: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0, 1.0, 1.0])
    """Weight of each layer's mean ℓ1 feature distance, one per entry of ``vgg_layers``."""

    ssim_weight: float = 0.0
    """Weight of the ``1 − SSIM`` term on the final image (off by default, not in the
    paper)."""

    ms_ssim: bool = False
    """Use multi-scale SSIM (kornia's, five Gaussian scales at full resolution) instead of
    SSIM for the SSIM term."""

    ssim_window: int = 11
    """Gaussian window side of the single-scale SSIM, in pixels (odd)."""

    gradient_weight: float = 0.0
    """Weight of the ℓ1 distance between the image gradients (Sobel, kornia) of the final
    image and the target (0 = off)."""

    laplacian_weight: float = 0.0
    """Weight of the Laplacian-pyramid ℓ1 (:func:`laplacian_pyramid_l1`) between the final
    image and the target (0 = off)."""

    laplacian_levels: int = 4
    """Levels of that pyramid (band-pass levels; the low-pass residual is the last)."""

    mouth_weight: float = 0.0
    """Weight of the extra ℓ1 over the mouth region (lips and mouth interior), on both the
    final and the intermediate image (0 = off; needs the ``mouth`` mask)."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check the values; raises :class:`RenderLossConfigError` (a ``ValueError``)."""
        validate_render_loss_config(self)


def validate_render_loss_config(cfg: Any) -> None:
    """Check a :class:`RenderLossConfig` or an OmegaConf object of that schema.

    Raises:
        RenderLossConfigError: (a ``ValueError``) naming every invalid field.
    """
    problems: list[str] = []
    for name in (
        "l1_weight",
        "face_l1_weight",
        "vgg_weight",
        "ssim_weight",
        "gradient_weight",
        "laplacian_weight",
        "mouth_weight",
    ):
        if not getattr(cfg, name) >= 0:
            problems.append(f"{name} must be >= 0, got {getattr(cfg, name)}")
    layers = list(cfg.vgg_layers)
    unknown = [name for name in layers if name not in VGG19_LAYERS]
    if unknown or not layers:
        problems.append(
            f"vgg_layers must name VGG19 layers (e.g. relu3_4), got {unknown or '(none)'}"
        )
    if len(cfg.vgg_layer_weights) != len(layers):
        problems.append(
            f"vgg_layer_weights has {len(cfg.vgg_layer_weights)} values for {len(layers)} "
            f"vgg_layers"
        )
    if any(not w >= 0 for w in cfg.vgg_layer_weights):
        problems.append(f"vgg_layer_weights must be >= 0, got {list(cfg.vgg_layer_weights)}")
    if not isinstance(cfg.laplacian_levels, int) or cfg.laplacian_levels < 1:
        problems.append(f"laplacian_levels must be an int >= 1, got {cfg.laplacian_levels!r}")
    if cfg.ssim_window < 3 or cfg.ssim_window % 2 == 0:
        problems.append(f"ssim_window must be odd and >= 3, got {cfg.ssim_window}")
    if problems:
        raise RenderLossConfigError("invalid render loss config: " + "; ".join(problems))


def _check_images(**images: Tensor) -> None:
    shapes = {name: tuple(x.shape) for name, x in images.items()}
    first = next(iter(shapes.values()))
    if len(first) != 4 or any(s != first for s in shapes.values()):
        listed = ", ".join(f"{name} {s}" for name, s in shapes.items())
        raise ValueError(f"expected images of one shape (B, C, H, W), got {listed}")


def masked_l1(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean absolute error over the masked pixel values.

    ``sum(|pred − target| · mask) / sum(mask broadcast to pred)``: with a ``(B, 1, H, W)``
    mask the denominator is ``mask.sum() · C``, the number of masked values, so the result is
    independent of the image area outside the mask. Soft (float) masks weight the pixels. An
    empty mask gives 0 (not NaN) with zero gradients.

    Args:
        pred: ``(B, C, H, W)`` float.
        target: ``(B, C, H, W)`` float.
        mask: ``(B, 1, H, W)`` or ``(B, C, H, W)``, bool or float weights ``>= 0``.

    Returns:
        Scalar tensor, float32 or wider, in the units of the images.
    """
    _check_images(pred=pred, target=target)
    b, c, h, w = pred.shape
    if mask.shape not in ((b, 1, h, w), (b, c, h, w)):
        raise ValueError(
            f"mask must be (B, 1, H, W) = {(b, 1, h, w)} or like pred {(b, c, h, w)}, "
            f"got {tuple(mask.shape)}"
        )
    dtype = torch.promote_types(torch.promote_types(pred.dtype, target.dtype), torch.float32)
    m = mask.to(dtype).expand(b, c, h, w)
    num = ((pred.to(dtype) - target.to(dtype)).abs() * m).sum()
    return num / m.sum().clamp(min=1e-12)


def ssim_loss(pred: Tensor, target: Tensor, ms_ssim: bool = False, window_size: int = 11) -> Tensor:
    """``1 − mean SSIM`` (or MS-SSIM) of images in ``[0, 1]``, through kornia.

    Note that ``kornia.losses.ssim_loss`` returns half of this, ``(1 − SSIM) / 2``.

    Args:
        pred: ``(B, C, H, W)`` float in ``[0, 1]``.
        target: ``(B, C, H, W)`` float in ``[0, 1]``.
        ms_ssim: multi-scale SSIM (``kornia.losses.MS_SSIMLoss`` with ``alpha = 1`` and no
            compensation factor: the pure MS-SSIM term) instead of SSIM.
        window_size: Gaussian window of the single-scale SSIM (odd).

    Returns:
        Scalar in ``[0, 2]``, 0 for identical images.
    """
    _check_images(pred=pred, target=target)
    if ms_ssim:
        criterion = kornia.losses.MS_SSIMLoss(data_range=1.0, alpha=1.0, compensation=1.0)
        return criterion.to(pred.device)(pred, target)
    return 1.0 - kornia.metrics.ssim(pred, target, window_size, max_val=1.0).mean()


def gradient_l1(pred: Tensor, target: Tensor) -> Tensor:
    """Mean absolute difference of the image gradients (kornia's normalised Sobel, x and y).

    Args:
        pred: ``(B, C, H, W)`` float.
        target: ``(B, C, H, W)`` float.

    Returns:
        Scalar, in image units per pixel.
    """
    _check_images(pred=pred, target=target)
    return (
        (kornia.filters.spatial_gradient(pred) - kornia.filters.spatial_gradient(target))
        .abs()
        .mean()
    )


def laplacian_pyramid_l1(pred: Tensor, target: Tensor, levels: int = 4) -> Tensor:
    """ℓ1 between Laplacian pyramids: the mean over levels of each level's mean ``|Δ|``.

    ``kornia.geometry.transform.build_laplacian_pyramid`` with ``levels`` levels (the last
    is the low-pass residual). Every level counts equally, so the band-pass levels (edges,
    teeth, hair) weigh as much as the coarse colours, unlike in a pixel ℓ1 where fine detail
    is a small part of the error. Images smaller than ``2 ** (levels - 1)`` use fewer levels.

    Args:
        pred: ``(B, C, H, W)`` float.
        target: ``(B, C, H, W)`` float.
        levels: pyramid levels (>= 1; 1 = plain ℓ1).

    Returns:
        Scalar, in image units.
    """
    from kornia.geometry.transform import build_laplacian_pyramid

    _check_images(pred=pred, target=target)
    levels = max(1, min(levels, 1 + int(min(pred.shape[-2:])).bit_length() - 3))
    if levels == 1:
        return (pred - target).abs().mean()
    lp = build_laplacian_pyramid(pred, levels - 1)
    lt = build_laplacian_pyramid(target, levels - 1)
    return torch.stack([(a - b).abs().mean() for a, b in zip(lp, lt, strict=True)]).mean()


class PerceptualLoss(nn.Module):
    """Weighted sum over VGG layers of the mean ℓ1 distance between feature maps.

    ``Σ_k w_k · mean |φ_k(pred) − φ_k(target)|``; the target's features are computed without
    gradients.

    Args:
        vgg: the frozen feature extractor; its ``input_range`` is the images' range.
        layer_weights: one weight per layer of ``vgg.layers`` (default: 1 each).
    """

    def __init__(self, vgg: VGGFeatures, layer_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        weights = [1.0] * len(vgg.layers) if layer_weights is None else list(layer_weights)
        if len(weights) != len(vgg.layers):
            raise ValueError(
                f"layer_weights has {len(weights)} values for the {len(vgg.layers)} VGG "
                f"layers {vgg.layers}"
            )
        self.vgg = vgg
        self.layer_weights = dict(zip(vgg.layers, (float(w) for w in weights), strict=True))

    def layer_losses(self, pred: Tensor, target: Tensor) -> dict[str, Tensor]:
        """Mean ℓ1 feature distance of every layer (unweighted).

        Args:
            pred: ``(B, 3, H, W)`` images in the VGG's ``input_range``.
            target: ``(B, 3, H, W)`` images in the same range.

        Returns:
            ``{layer name: scalar}``.
        """
        _check_images(pred=pred, target=target)
        with torch.no_grad():
            ref = self.vgg(target)
        out = self.vgg(pred)
        return {name: (out[name] - ref[name]).abs().mean() for name in self.vgg.layers}

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """The weighted sum of :meth:`layer_losses`: a scalar."""
        losses = self.layer_losses(pred, target)
        return sum((self.layer_weights[k] * v for k, v in losses.items()), pred.new_zeros(()))


class RenderLoss(nn.Module):
    """The loss of the rendering stage (see the module docstring).

    Args:
        cfg: a :class:`RenderLossConfig` (or an OmegaConf object of that schema).
        vgg: an already built :class:`VGGFeatures` (images in ``[-1, 1]``) to use instead of
            loading one; ignored when ``vgg_weight = 0``.

    Raises:
        MissingDependencyError: ``vgg_weight > 0`` and the VGG19 weights are not found.
    """

    def __init__(self, cfg: Any, vgg: VGGFeatures | None = None) -> None:
        super().__init__()
        validate_render_loss_config(cfg)
        self.l1_weight = float(cfg.l1_weight)
        self.face_l1_weight = float(cfg.face_l1_weight)
        self.vgg_weight = float(cfg.vgg_weight)
        self.ssim_weight = float(cfg.ssim_weight)
        self.ms_ssim = bool(cfg.ms_ssim)
        self.ssim_window = int(cfg.ssim_window)
        self.gradient_weight = float(cfg.gradient_weight)
        self.laplacian_weight = float(cfg.laplacian_weight)
        self.laplacian_levels = int(cfg.laplacian_levels)
        self.mouth_weight = float(cfg.mouth_weight)
        self.perceptual: PerceptualLoss | None = None
        if self.vgg_weight > 0:
            if vgg is None:
                vgg = VGGFeatures(
                    list(cfg.vgg_layers), weights=cfg.vgg_weights_path, input_range=(-1.0, 1.0)
                )
            elif vgg.input_range != (-1.0, 1.0) or vgg.layers != list(cfg.vgg_layers):
                raise ValueError(
                    f"the given VGGFeatures must take images in (-1, 1) and return the layers "
                    f"{list(cfg.vgg_layers)}; got input_range={vgg.input_range}, "
                    f"layers={vgg.layers}"
                )
            self.perceptual = PerceptualLoss(vgg, list(cfg.vgg_layer_weights))

    def forward(
        self,
        final: Tensor,
        intermediate: Tensor | None,
        target: Tensor,
        face_mask: Tensor,
        mouth_mask: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Loss and its terms.

        Args:
            final: ``(B, 3, H, W)`` final image (blending network output) in ``[-1, 1]``.
            intermediate: ``(B, 3, H, W)`` renderer network output in ``[-1, 1]``, or
                ``None`` (no face term, e.g. when the renderer is trained alone and its output
                is passed as ``final``).
            target: ``(B, 3, H, W)`` target frame in ``[-1, 1]``.
            face_mask: ``(B, 1, H, W)`` bool or float, the face region of the intermediate
                term (e.g. the UV validity mask).
            mouth_mask: ``(B, 1, H, W)`` mouth region; needed when ``mouth_weight > 0``.

        Returns:
            ``{"loss", "l1", "face_l1", "vgg", "ssim", "gradient", "laplacian", "mouth_l1"}``:
            scalars; ``loss`` is the weighted sum, the others are the unweighted terms (0 for
            a term whose weight is 0, except the cheap ℓ1 terms, always measured).
        """
        if intermediate is None:
            _check_images(final=final, target=target)
        else:
            _check_images(final=final, intermediate=intermediate, target=target)
        zero = final.new_zeros((), dtype=torch.promote_types(final.dtype, torch.float32))
        l1 = (final - target).abs().mean().to(zero.dtype)
        face_l1 = zero if intermediate is None else masked_l1(intermediate, target, face_mask)
        vgg = zero
        if self.perceptual is not None:
            vgg = self.perceptual(final, target).to(zero.dtype)
        ssim = zero
        if self.ssim_weight > 0:
            ssim = ssim_loss(
                (final + 1.0) / 2.0,
                (target + 1.0) / 2.0,
                ms_ssim=self.ms_ssim,
                window_size=self.ssim_window,
            ).to(zero.dtype)
        grad = zero
        if self.gradient_weight > 0:
            grad = gradient_l1(final, target).to(zero.dtype)
        lap = zero
        if self.laplacian_weight > 0:
            lap = laplacian_pyramid_l1(final, target, self.laplacian_levels).to(zero.dtype)
        mouth = zero
        if self.mouth_weight > 0:
            if mouth_mask is None:
                raise ValueError("RenderLoss: mouth_weight > 0 needs the mouth mask")
            mouth = masked_l1(final, target, mouth_mask)
            if intermediate is not None:
                mouth = mouth + masked_l1(intermediate, target, mouth_mask)
        loss = (
            self.l1_weight * l1
            + self.face_l1_weight * face_l1
            + self.vgg_weight * vgg
            + self.ssim_weight * ssim
            + self.gradient_weight * grad
            + self.laplacian_weight * lap
            + self.mouth_weight * mouth
        )
        return {
            "loss": loss,
            "l1": l1,
            "face_l1": face_l1,
            "vgg": vgg,
            "ssim": ssim,
            "gradient": grad,
            "laplacian": lap,
            "mouth_l1": mouth,
        }
