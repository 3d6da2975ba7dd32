"""The renderer U-Nets of the person-specific stage: dilated (paper) or strided (ablation).

Neural Voice Puppetry renders a face in two steps (§5.2, appendix A):

* **network 1** turns the sampled neural-texture features ``(B, 16, H, W)`` into an RGB image
  of the face interior;
* **network 2** (blending / inpainting) takes the eroded target frame (background with the face
  region and a band around it removed, :func:`erode_background`) together with network 1's
  output and produces the final frame (:func:`blending_config`, :func:`blending_input`).

Both are the same :class:`RenderUNet`, a 5-level U-Net with one 3 × 3 convolution per encoder
and decoder level, skip connections by concatenation and LeakyReLU(0.2).

Layout (``levels = L``, widths ``w_i = min(base_width · 2**i, max_width)``)
------------------------------------------------------------------------------
* encoder ``e_0``: 3 × 3 convolution ``in_channels → w_0`` at full resolution (dilation 1,
  stride 1) in both variants;
* encoder ``e_i``, i = 1 … L-1: 3 × 3 convolution ``w_{i-1} → w_i``; dilated: dilation
  ``2**i`` (padding ``2**i``, full resolution); strided: stride 2 (resolution ÷ 2);
* decoder ``d_i``, i = L-2 … 1: 3 × 3 convolution on the concatenation ``[below, e_i]``;
  dilated: dilation ``2**i`` on ``below`` as it is; strided: ``below`` up-sampled × 2
  (nearest or bilinear) first. Its widths depend on ``decoder``:

  - ``"wide"``: ``w_{i+1} + w_i → w_i`` (``below`` is ``e_{L-1}`` or ``d_{i+1}``);
  - ``"halving"``: ``v_{i+1} + w_i → w_{i-1}``, with ``v_{L-1} = w_{L-1}`` (the
    bottleneck) and ``v_i = w_{i-1}``: every decoder convolution halves the features, as in
    the authors' release (about 0.65 × the decoder's multiply-adds of ``"wide"``);
* decoder ``d_0`` (``head``): 3 × 3 convolution ``v_1 + w_0 → out_channels`` on
  ``[below (up-sampled when strided), e_0]``, then ``out_activation`` (``v_1 = w_1`` for
  ``"wide"``, ``w_0`` for ``"halving"``).

Every block but ``d_0`` is ``conv → norm → LeakyReLU(slope)``; ``d_0`` is ``conv →
out_activation``. The dilated net works at full resolution everywhere ("features and dilation
double with depth"); decoder level i uses the dilation ``2**i`` of encoder level i, the pixel
spacing at which the strided twin's decoder convolution of level i works.

Equal parameter counts, by construction
---------------------------------------
The paper says the strided ablation has the same parameter count as the dilated net. Here the
two variants have *identical* parameter shapes: every convolution is 3 × 3 in both, and the
only differences are dilation vs. stride 2 in the encoder and the parameter-free × 2
up-sampling (nearest or bilinear) in the strided decoder. The paper's "kernel 4, stride 2" for
the ablation is therefore not followed: a 4 × 4 kernel would change the count, and a 4 × 4
dilated convolution cannot be centred (it needs asymmetric padding and shifts the image by
half a dilation per layer).

Normalisation: ``norm="instance"`` (default) applies an affine ``InstanceNorm2d`` after every
encoder and decoder convolution but the last (the authors' release builds the encoder norms but
drops them by a bug; here they are applied). Convolutions followed by a norm have no bias (the
norm's shift replaces it); with ``norm="none"`` they have one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nvp.errors import ConfigError
from nvp.nets.audio2expression import count_parameters

__all__ = [
    "RenderUNet",
    "UNetConfig",
    "UNetConfigError",
    "blending_config",
    "blending_input",
    "count_parameters",
    "erode_background",
    "receptive_field",
    "validate_unet_config",
]


class UNetConfigError(ConfigError, ValueError):
    """An invalid :class:`UNetConfig`; a ConfigError and a ValueError."""


@dataclass
class UNetConfig:
    """Architecture of a :class:`RenderUNet` (renderer or blending network).

    The defaults are the renderer network (network 1) of the paper: 16 neural-texture features
    in, RGB in ``[-1, 1]`` out, 5 dilated levels. The paper's per-layer widths did not survive;
    ``base_width`` is a measured quality/cost choice (see ``benchmarks/render_nets.py``).
    """

    in_channels: int = 16
    """Input channels: the neural-texture features (16) for the renderer; 6 (or 7 with the
    mask channel) for the blending network, see :func:`blending_config`."""

    out_channels: int = 3
    """Output channels (3: RGB)."""

    base_width: int = 16
    """Features of level 1 (``w_0``); they double with each level, capped by ``max_width``.
    The authors' release uses 64 (doubling to 512): about 16 × the compute of 16."""

    max_width: int = 256
    """Upper bound of the features of any level."""

    levels: int = 5
    """Number of U-Net levels L (>= 2). The strided variant down-samples L - 1 times, so its
    input sides must be divisible by ``2 ** (L - 1)`` (16 for 5 levels)."""

    conv: Literal["dilated", "strided"] = "dilated"
    """``"dilated"``: full resolution everywhere, dilation ``2**i`` at level i (paper).
    ``"strided"``: stride-2 down-sampling and up-sampling (the paper's ablation). Both have the
    same parameters."""

    norm: Literal["instance", "none", "batch"] = "instance"
    """Normalisation after every convolution but the last: affine ``InstanceNorm2d``, none, or
    ``BatchNorm2d``."""

    slope: float = 0.2
    """Negative slope of the LeakyReLUs."""

    out_activation: Literal["tanh", "sigmoid", "none"] = "tanh"
    """Activation of the output: ``"tanh"`` gives images in ``[-1, 1]`` (the convention of the
    renderer losses), ``"sigmoid"`` images in ``[0, 1]``, ``"none"`` unbounded values."""

    upsample: Literal["bilinear", "nearest"] = "bilinear"
    """Up-sampling of the strided variant's decoder (× 2, parameter-free); unused by the dilated
    variant."""

    network: str | None = None
    """Your own network in place of this U-Net, named by reference (``module:Class`` or
    ``file.py:Class``; see :mod:`nvp.plugins`). The class is built as ``Class(cfg, options)``
    with this config (``in_channels``, ``out_channels``, ...) and ``options`` checked against
    its ``Config`` dataclass, and maps ``(B, in_channels, H, W)`` to ``(B, out_channels, H,
    W)``. ``None``: the U-Net of the fields below. Used for network 1 (the renderer); the
    blending network stays a U-Net."""

    options: dict[str, Any] = field(default_factory=dict)
    """Settings of ``network`` (empty without one)."""

    decoder: Literal["wide", "halving"] = "halving"
    """Decoder widths (see the module docstring): ``"halving"`` (each decoder convolution
    outputs the width of the level above, as in the authors' release; fewer multiply-adds) or
    ``"wide"`` (each outputs its own level's width; checkpoints written before this option
    existed use it)."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check the values; raises :class:`UNetConfigError` (a ``ValueError``).

        Runs in ``__post_init__`` and again when a network is built, since OmegaConf merges do
        not re-run ``__post_init__``.
        """
        validate_unet_config(self)


def validate_unet_config(cfg: Any) -> None:
    """Check a :class:`UNetConfig` or an OmegaConf object of that schema.

    Raises:
        UNetConfigError: (a ``ValueError``) naming every invalid field.
    """
    problems: list[str] = []
    for name in ("in_channels", "out_channels", "base_width", "max_width"):
        value = getattr(cfg, name)
        if not isinstance(value, int) or value < 1:
            problems.append(f"{name} must be a positive int, got {value!r}")
    if not isinstance(cfg.levels, int) or cfg.levels < 2:
        problems.append(f"levels must be an int >= 2, got {cfg.levels!r}")
    widths_are_ints = isinstance(cfg.max_width, int) and isinstance(cfg.base_width, int)
    if widths_are_ints and cfg.max_width < cfg.base_width:
        problems.append(f"max_width={cfg.max_width} is below base_width={cfg.base_width}")
    choices = {
        "conv": ("dilated", "strided"),
        "norm": ("instance", "none", "batch"),
        "out_activation": ("tanh", "sigmoid", "none"),
        "upsample": ("bilinear", "nearest"),
        "decoder": ("wide", "halving"),
    }
    for name, allowed in choices.items():
        if getattr(cfg, name) not in allowed:
            problems.append(f"{name} must be one of {allowed}, got {getattr(cfg, name)!r}")
    if not cfg.slope >= 0:
        problems.append(f"slope must be >= 0, got {cfg.slope}")
    if problems:
        raise UNetConfigError("invalid RenderUNet config: " + "; ".join(problems))


def _widths(cfg: Any) -> list[int]:
    return [min(cfg.base_width * 2**i, cfg.max_width) for i in range(cfg.levels)]


def _decoder_widths(cfg: Any, w: list[int]) -> list[int]:
    """``v_i``: the width of decoder level i's output, i = 0 … L-1 (``v_{L-1}`` = bottleneck;
    ``v_0`` is unused: the head outputs ``out_channels``)."""
    if getattr(cfg, "decoder", "wide") == "wide":
        return list(w)
    return [w[max(i - 1, 0)] for i in range(len(w) - 1)] + [w[-1]]


def receptive_field(cfg: Any) -> int:
    """Side, in input pixels, of the square region one output pixel depends on (the largest).

    Computed exactly, without tensors, by propagating along one image axis the interval of
    input pixels every position of every feature map depends on (taps of each convolution,
    the two source pixels of a bilinear up-sampling, the one of a nearest up-sampling, the
    union at each skip concatenation), then taking the widest interval.

    * dilated: the same for every interior pixel, ``1 + 2 · (sum of all dilations)``; for 5
      levels ``1 + 2 · (1+2+4+8+16 + 8+4+2+1) = 93`` (``3 · 2**L − 3``);
    * strided: it depends on the pixel's position on the stride grid (period
      ``2 ** (L-1)``); the largest is returned (5 levels: 97 bilinear, 65 nearest).

    Near the image border the zero padding truncates it. With ``norm="instance"`` (or
    ``"batch"`` in training) the normalisation statistics couple every pixel of the image to
    every other; this counts the convolutions only.

    Args:
        cfg: a :class:`UNetConfig` (or an OmegaConf object of that schema).

    Returns:
        The receptive field side in pixels.
    """
    validate_unet_config(cfg)
    levels = cfg.levels
    dilated = cfg.conv == "dilated"
    n = 2 ** (levels - 1) * 32  # > 2 x any receptive field of these nets
    Intervals = list[tuple[int, int]]

    def conv(x: Intervals, stride: int, dilation: int) -> Intervals:
        out = []
        for o in range((len(x) - 1) // stride + 1):
            taps = [
                x[i] for i in (stride * o + t * dilation for t in (-1, 0, 1)) if 0 <= i < len(x)
            ]
            out.append((min(t[0] for t in taps), max(t[1] for t in taps)))
        return out

    def up(x: Intervals) -> Intervals:
        if dilated:
            return x
        if cfg.upsample == "nearest":
            return [x[p // 2] for p in range(2 * len(x))]
        out = []
        for p in range(2 * len(x)):  # F.interpolate, bilinear, align_corners=False
            src = max((p + 0.5) / 2 - 0.5, 0.0)
            i0 = int(src)
            i1 = min(i0 + 1, len(x) - 1) if src > i0 else i0
            out.append((min(x[i0][0], x[i1][0]), max(x[i0][1], x[i1][1])))
        return out

    def cat(a: Intervals, b: Intervals) -> Intervals:
        return [(min(p[0], q[0]), max(p[1], q[1])) for p, q in zip(a, b, strict=True)]

    h: Intervals = [(i, i) for i in range(n)]
    skips = []
    for i in range(levels):
        stride = 2 if i > 0 and not dilated else 1
        h = conv(h, stride, 2**i if dilated else 1)
        skips.append(h)
    h = skips.pop()
    for i in range(levels - 2, -1, -1):
        h = conv(cat(up(h), skips.pop()), 1, 2**i if dilated else 1)
    return max(hi - lo + 1 for lo, hi in h)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


class _Block(nn.Sequential):
    """``Conv2d(3 × 3) → norm → LeakyReLU``."""

    def __init__(
        self, c_in: int, c_out: int, *, stride: int, dilation: int, norm: str, slope: float
    ) -> None:
        super().__init__(
            nn.Conv2d(
                c_in,
                c_out,
                3,
                stride=stride,
                padding=dilation,
                dilation=dilation,
                bias=norm == "none",
            ),
            _norm(norm, c_out),
            nn.LeakyReLU(slope),
        )


class RenderUNet(nn.Module):
    """U-Net image-to-image network of the renderer (dilated or strided, see the module doc).

    Submodules: ``encoder[i]`` (``conv → norm → LeakyReLU``, i = 0 … L-1), ``decoder[i]``
    (the same, i = 1 … L-2, indexed from the top: ``decoder[i - 1]`` is level i) and ``head``
    (decoder level 0: the output convolution). PyTorch's default initialisation.

    Args:
        cfg: a :class:`UNetConfig` (or an OmegaConf object of that schema).
    """

    def __init__(self, cfg: Any) -> None:
        super().__init__()
        validate_unet_config(cfg)
        self.in_channels = cfg.in_channels
        self.out_channels = cfg.out_channels
        self.levels = cfg.levels
        self.conv = cfg.conv
        self.upsample = cfg.upsample
        self.widths = _widths(cfg)
        w = self.widths
        dilated = cfg.conv == "dilated"

        def block(c_in: int, c_out: int, level: int, down: bool) -> _Block:
            stride = 2 if down and not dilated else 1
            dilation = 2**level if dilated else 1
            return _Block(
                c_in, c_out, stride=stride, dilation=dilation, norm=cfg.norm, slope=cfg.slope
            )

        self.encoder = nn.ModuleList(
            block(cfg.in_channels if i == 0 else w[i - 1], w[i], i, down=i > 0)
            for i in range(cfg.levels)
        )
        v = _decoder_widths(cfg, w)
        self.decoder = nn.ModuleList(
            block(v[i + 1] + w[i], v[i], i, down=False) for i in range(1, cfg.levels - 1)
        )
        self.head = nn.Conv2d(v[1] + w[0], cfg.out_channels, 3, padding=1)
        activations = {"tanh": nn.Tanh(), "sigmoid": nn.Sigmoid(), "none": nn.Identity()}
        self.out_activation = activations[cfg.out_activation]

    @property
    def size_multiple(self) -> int:
        """Input sides must be multiples of this (``2 ** (levels - 1)`` strided, 1 dilated)."""
        return 2 ** (self.levels - 1) if self.conv == "strided" else 1

    def _check(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[1] != self.in_channels:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(
                f"RenderUNet expects input of shape (B, {self.in_channels}, H, W), got {shape}"
            )
        m = self.size_multiple
        h, w = x.shape[-2:]
        if h % m or w % m:
            raise ValueError(
                f"the strided RenderUNet ({self.levels} levels) needs input sides divisible by "
                f"{m}, got {h} x {w}; crop or pad the input (e.g. to {-(-h // m) * m} x "
                f"{-(-w // m) * m}) or use conv='dilated', which takes any size"
            )

    def _up(self, x: Tensor) -> Tensor:
        if self.conv == "dilated":
            return x
        if self.upsample == "nearest":
            return F.interpolate(x, scale_factor=2.0, mode="nearest")
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)

    def forward(self, x: Tensor) -> Tensor:
        """Image-to-image.

        Args:
            x: ``(B, in_channels, H, W)`` float; any H, W for the dilated variant, multiples of
                ``2 ** (levels - 1)`` for the strided one.

        Returns:
            ``(B, out_channels, H, W)``, in ``[-1, 1]`` with ``out_activation="tanh"``.
        """
        self._check(x)
        skips: list[Tensor] = []
        h = x
        for enc in self.encoder:
            h = enc(h)
            skips.append(h)
        h = skips.pop()  # bottleneck e_{L-1}
        for dec in reversed(self.decoder):
            h = dec(torch.cat([self._up(h), skips.pop()], dim=1))
        h = self.head(torch.cat([self._up(h), skips.pop()], dim=1))
        return self.out_activation(h)


def blending_config(base: Any, with_mask: bool = False) -> UNetConfig:
    """Config of the blending / inpainting network (network 2) from the renderer's config.

    The same architecture (levels, widths, conv, norm, activations) with input channels
    ``[eroded target frame (3), network 1's RGB output (3)]`` plus, with ``with_mask``, the
    kept-background mask (1) as a 7th channel (see :func:`blending_input`), and RGB out.

    Args:
        base: the renderer's :class:`UNetConfig` (or an OmegaConf object of that schema).
        with_mask: add the mask channel (7 inputs instead of 6).
    """
    values = {f.name: getattr(base, f.name) for f in dataclasses.fields(UNetConfig)}
    values.update(in_channels=7 if with_mask else 6, out_channels=3, network=None, options={})
    return UNetConfig(**values)


def build_network(cfg: UNetConfig) -> nn.Module:
    """The network of a :class:`UNetConfig`: a :class:`RenderUNet`, or the class that
    ``cfg.network`` names, built as ``Class(cfg, options)``.

    Raises:
        ConfigError: the class cannot be loaded or its options are invalid.
    """
    if not cfg.network:
        return RenderUNet(cfg)
    from nvp.plugins import load_object, plugin_options

    cls = load_object(cfg.network, "renderer.network")
    return cls(cfg, plugin_options(cls, cfg.options, "renderer.options"))


def blending_input(eroded: Tensor, rendered: Tensor, kept: Tensor | None = None) -> Tensor:
    """Input of the blending network: ``[eroded frame, rendered face(, kept mask)]``.

    Args:
        eroded: ``(B, 3, H, W)`` eroded target frame (:func:`erode_background`).
        rendered: ``(B, 3, H, W)`` network 1's output, same range as ``eroded``.
        kept: optional ``(B, 1, H, W)`` bool or float kept-background mask; given, it is
            appended as a 0/1 channel (use :func:`blending_config` with ``with_mask=True``).

    Returns:
        ``(B, 6, H, W)`` or ``(B, 7, H, W)`` in the dtype of ``rendered``.
    """
    if eroded.shape != rendered.shape or eroded.ndim != 4 or eroded.shape[1] != 3:
        raise ValueError(
            f"eroded and rendered must both be (B, 3, H, W), got {tuple(eroded.shape)} and "
            f"{tuple(rendered.shape)}"
        )
    parts = [eroded.to(rendered.dtype), rendered]
    if kept is not None:
        if kept.shape != (eroded.shape[0], 1, *eroded.shape[2:]):
            raise ValueError(
                f"kept must be (B, 1, H, W) = {(eroded.shape[0], 1, *eroded.shape[2:])}, "
                f"got {tuple(kept.shape)}"
            )
        parts.append(kept.to(rendered.dtype))
    return torch.cat(parts, dim=1)


def erode_background(frame: Tensor, face_mask: Tensor, band: int) -> tuple[Tensor, Tensor]:
    """Remove the face region and a band of ``band`` pixels around it from a frame.

    The blending network's input "eroded target frame": the original face (and its chin) must
    not show, so that the network inpaints the region from the rendered face. A pixel is
    removed when a face pixel lies within Chebyshev distance ``band`` of it, i.e. the face mask
    is dilated by a square ``(2 band + 1) × (2 band + 1)`` structuring element (a separable max
    pooling; pixels outside the image count as background).

    Args:
        frame: ``(B, C, H, W)`` float frame (any range; removed pixels become exactly 0).
        face_mask: ``(B, 1, H, W)`` bool or float; pixels with value ``> 0`` are face.
        band: width of the removed band around the face, in pixels (>= 0).

    Returns:
        ``eroded`` ``(B, C, H, W)`` (0 where removed) and ``kept`` ``(B, 1, H, W)`` bool, True
        where the frame was kept.
    """
    if not isinstance(band, int) or isinstance(band, bool) or band < 0:
        raise ValueError(f"band must be an int >= 0 (pixels), got {band!r}")
    if frame.ndim != 4:
        raise ValueError(f"frame must be (B, C, H, W), got {tuple(frame.shape)}")
    b, _, h, w = frame.shape
    if face_mask.shape != (b, 1, h, w):
        raise ValueError(
            f"face_mask must be (B, 1, H, W) = {(b, 1, h, w)} like the frame, "
            f"got {tuple(face_mask.shape)}"
        )
    face = (face_mask > 0).to(torch.float32 if not frame.is_floating_point() else frame.dtype)
    if band > 0:
        k = 2 * band + 1
        face = F.max_pool2d(face, (1, k), stride=1, padding=(0, band))
        face = F.max_pool2d(face, (k, 1), stride=1, padding=(band, 0))
    kept = face <= 0
    eroded = torch.where(kept, frame, torch.zeros((), dtype=frame.dtype, device=frame.device))
    return eroded, kept
