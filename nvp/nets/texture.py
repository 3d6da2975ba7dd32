"""Neural texture: learnable feature maps sampled at the rasterized UV coordinates of a face.

The deferred neural rendering input of Neural Voice Puppetry (§5.2): a ``(C, T, T)`` texture
of learnable features (paper: 16 features, 256 × 256 texels) is sampled at every pixel's UV
coordinate; the renderer U-Net turns the sampled ``(B, C, H, W)`` feature image into RGB.

UV convention (the same as :mod:`nvp.raster.texture`)
-----------------------------------------------------
A UV map is ``(B, H, W, 2)`` float with ``(u, v)`` in ``[0, 1]`` on covered pixels and ``-1``
(any negative or non-finite value) on background. ``u`` selects the texture **column** (x),
``v`` the texture **row** (y). Texel ``(r, c)`` of a ``T_h × T_w`` texture covers
``u ∈ [c / T_w, (c + 1) / T_w)``, ``v ∈ [r / T_h, (r + 1) / T_h)`` and is centred on
``((c + 0.5) / T_w, (r + 0.5) / T_h)``. With ``grid_sample(..., align_corners=False)`` that is
exactly ``grid = 2 · uv − 1`` for every texture size: sampling at a texel centre returns the
texel's value, between centres the four nearest texels are interpolated bilinearly, and beyond
the outermost centres the border texels are repeated (``padding_mode="border"``).
``align_corners`` is always passed explicitly (leaving it implicit is a known defect of the
authors' release).

Background pixels get exactly zero features (they are masked, not only sampled), and no
gradient reaches the texture from them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["DynamicNeuralTexture", "NeuralTexture", "uv_to_grid", "uv_valid_mask"]


def _check_uv(uv: object) -> Tensor:
    if not isinstance(uv, Tensor) or uv.ndim != 4 or uv.shape[-1] != 2:
        shape = tuple(uv.shape) if isinstance(uv, Tensor) else type(uv).__name__
        raise ValueError(f"uv must have shape (B, H, W, 2), got {shape}")
    if not uv.is_floating_point():
        raise ValueError(f"uv must be a floating-point tensor, got {uv.dtype}")
    return uv


def uv_valid_mask(uv: Tensor) -> Tensor:
    """Covered pixels of a UV map: both coordinates finite and non-negative.

    Args:
        uv: ``(B, H, W, 2)`` float UV map, negative on background.

    Returns:
        ``(B, 1, H, W)`` bool, True on covered (face) pixels.
    """
    uv = _check_uv(uv)
    return (torch.isfinite(uv) & (uv >= 0)).all(-1)[:, None]


def uv_to_grid(uv: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """``grid_sample`` grid (``align_corners=False``) of a UV map: ``2 · uv − 1``.

    Background (invalid) pixels are sent to the texture centre (``0``) so the grid never holds
    NaN or huge values; their samples must be masked by the caller.

    Args:
        uv: ``(B, H, W, 2)`` float UV map (any float dtype, e.g. float16), negative on
            background.
        dtype: dtype of the grid (that of the texture it samples).

    Returns:
        ``(B, H, W, 2)`` grid in ``[-1, 1]`` on covered pixels, ``(x, y) = (2u − 1, 2v − 1)``.
    """
    valid = uv_valid_mask(uv)[:, 0, ..., None]
    coords = torch.where(valid, uv.to(dtype), 0.5)
    return 2.0 * coords - 1.0


class NeuralTexture(nn.Module):
    """A learnable ``(C, size, size)`` texture, optionally a multi-resolution hierarchy.

    With ``levels = 1`` (the paper) the texture is one parameter ``pyramid[0]`` of shape
    ``(channels, size, size)``. With ``levels = L > 1`` (the release's ``hierarchicalTex``, a
    Laplacian-pyramid texture as in Deferred Neural Rendering) there are ``L`` parameters of
    sides ``size, size / 2, …, size / 2**(L-1)``; each is sampled at the same UVs and the
    samples are summed, so coarse levels share gradients over large texture regions.
    :meth:`dense` gives the equivalent single-resolution texture.

    Args:
        size: side of the finest level, in texels (paper: 256). With ``levels > 1`` it must be
            divisible by ``2 ** (levels - 1)``.
        channels: C, features per texel (paper: 16).
        levels: number of resolution levels (1 = a plain texture).
        init_std: standard deviation of the normal initialisation (1.0: unit normal, like
            ``torch.randn``); with L levels each is drawn with std ``init_std / sqrt(L)``, so
            the summed texel values at the coarsest texel centres have std ``init_std``.
    """

    def __init__(
        self, size: int = 256, channels: int = 16, levels: int = 1, init_std: float = 1.0
    ) -> None:
        super().__init__()
        for name, value in (("size", size), ("channels", channels), ("levels", levels)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"NeuralTexture: {name} must be a positive int, got {value!r}")
        if size % 2 ** (levels - 1):
            raise ValueError(
                f"NeuralTexture: size={size} is not divisible by 2**(levels-1) = "
                f"{2 ** (levels - 1)}; every level must have an integer side"
            )
        if not init_std >= 0:
            raise ValueError(f"NeuralTexture: init_std must be >= 0, got {init_std}")
        self.size = size
        self.channels = channels
        self.levels = levels
        std = init_std / math.sqrt(levels)
        self.pyramid = nn.ParameterList(
            nn.Parameter(torch.randn(channels, size >> k, size >> k) * std) for k in range(levels)
        )

    def extra_repr(self) -> str:
        return f"size={self.size}, channels={self.channels}, levels={self.levels}"

    @property
    def texture(self) -> Tensor:
        """The finest level, ``(C, size, size)`` (the whole texture when ``levels = 1``)."""
        return self.pyramid[0]

    def dense(self) -> Tensor:
        """The single-resolution texture equivalent to the hierarchy, ``(C, size, size)``.

        Coarse levels are up-sampled bilinearly with ``align_corners=False``, which
        interpolates them at the fine texel centres: at those UVs :meth:`forward` returns
        :meth:`dense`'s texels (up to rounding); between them :meth:`forward` interpolates
        every level at its own resolution, which the fine grid only approximates.
        Differentiable; for visualisation and export.
        """
        out = self.pyramid[0]
        for level in list(self.pyramid)[1:]:
            up = F.interpolate(
                level[None], size=(self.size, self.size), mode="bilinear", align_corners=False
            )
            out = out + up[0]
        return out

    def sample(self, uv: Tensor) -> tuple[Tensor, Tensor]:
        """Features at the UVs and the validity mask.

        Args:
            uv: ``(B, H, W, 2)`` float UV map (float16 is accepted and cast to the texture's
                dtype), ``(u, v)`` in ``[0, 1]`` on covered pixels, negative on background.

        Returns:
            ``features`` ``(B, C, H, W)`` in the texture's dtype, exactly 0 on background, and
            ``mask`` ``(B, 1, H, W)`` bool, True on covered pixels.
        """
        dtype, device = self.pyramid[0].dtype, self.pyramid[0].device
        uv = _check_uv(uv).to(device)
        mask = uv_valid_mask(uv)
        grid = uv_to_grid(uv, dtype)
        b = uv.shape[0]
        out: Tensor | None = None
        for level in self.pyramid:
            tex = level[None].expand(b, -1, -1, -1)
            s = F.grid_sample(
                tex, grid, mode="bilinear", padding_mode="border", align_corners=False
            )
            out = s if out is None else out + s
        assert out is not None
        features = torch.where(mask, out, torch.zeros((), dtype=dtype, device=out.device))
        return features, mask

    def forward(self, uv: Tensor) -> Tensor:
        """Features at the UVs (see :meth:`sample`, which also returns the mask).

        Args:
            uv: ``(B, H, W, 2)`` float UV map, negative on background.

        Returns:
            ``(B, C, H, W)`` features, exactly 0 on background.
        """
        return self.sample(uv)[0]


class DynamicNeuralTexture(nn.Module):
    """An expression-conditioned neural texture (the release's "dynamic neural texture").

    A learned texture of ``intermediate_channels`` features (a :class:`NeuralTexture`, so it
    can be hierarchical) is filtered, per frame, with a ``k × k`` convolution whose weights a
    small MLP predicts from the frame's expression coefficients; the filtered
    ``(channels, size, size)`` texture is then sampled at the UVs as in
    :class:`NeuralTexture`. The mouth interior (teeth, tongue), which the mesh does not model,
    can so take the appearance of the expression it belongs to.

    ``filter(e) = base + scale · tanh(MLP((e − mean) / std))``, with ``MLP`` =
    Linear(K → 128) → LeakyReLU(0.02) → Linear(128 → 64) → LeakyReLU(0.02) →
    Linear(64 → channels · intermediate_channels · k²) (the release's widths). Differences
    from the release, on purpose:

    * batched: the texture is filtered for all B frames by one convolution with
      ``B · channels`` output filters (the release loops over the batch and stops for B > 1);
    * the kernel is odd and centred (``k = 3``, padding 1; the release's 4 × 4 kernel with
      padding 2 grows the texture by one texel and shifts it by half a texel);
    * a learned static filter ``base`` (initialised to the identity when the channel counts
      are equal) plus an expression-dependent residual whose last layer starts at zero: at
      initialisation the texture is a plain neural texture, and training adds the
      expression dependence;
    * the expressions are standardised with the buffers ``mean``/``std`` (K,), set from the
      training frames (:meth:`set_expression_stats`) and saved with the weights.

    Args:
        expression_dim: K, expression coefficients per frame (0, e.g. a store in the
            template face model without an expression basis: the filter is the learned
            static one, and the texture does not depend on the frame).
        size: texture side (texels).
        channels: C, features out (the renderer's input channels).
        intermediate_channels: features stored in the texture (release: 16).
        levels: resolution levels of the stored texture (:class:`NeuralTexture`).
        kernel: filter side k (odd).
        scale: amplitude of the expression-dependent part of the filter.
    """

    def __init__(
        self,
        expression_dim: int,
        size: int = 256,
        channels: int = 16,
        intermediate_channels: int = 16,
        levels: int = 1,
        kernel: int = 3,
        scale: float = 0.1,
    ) -> None:
        super().__init__()
        if not isinstance(expression_dim, int) or expression_dim < 0:
            raise ValueError(
                f"DynamicNeuralTexture: expression_dim must be an int >= 0, got {expression_dim!r}"
            )
        if not isinstance(kernel, int) or kernel < 1 or kernel % 2 == 0:
            raise ValueError(
                f"DynamicNeuralTexture: kernel must be an odd int >= 1, got {kernel!r}"
            )
        self.base_texture = NeuralTexture(size, intermediate_channels, levels)
        self.size, self.channels, self.levels = size, channels, levels
        self.intermediate_channels = intermediate_channels
        self.kernel = kernel
        self.scale = float(scale)
        n = channels * intermediate_channels * kernel * kernel
        self.mlp = nn.Sequential(
            nn.Linear(expression_dim, 128),
            nn.LeakyReLU(0.02),
            nn.Linear(128, 64),
            nn.LeakyReLU(0.02),
            nn.Linear(64, n),
        )
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)
        base = torch.zeros(channels, intermediate_channels, kernel, kernel)
        if channels == intermediate_channels:
            base[torch.arange(channels), torch.arange(channels), kernel // 2, kernel // 2] = 1.0
        else:
            nn.init.kaiming_uniform_(base, a=math.sqrt(5))
        self.base = nn.Parameter(base)
        self.register_buffer("mean", torch.zeros(expression_dim))
        self.register_buffer("std", torch.ones(expression_dim))

    def extra_repr(self) -> str:
        return (
            f"expression_dim={self.mean.numel()}, channels={self.channels}, "
            f"intermediate_channels={self.intermediate_channels}, kernel={self.kernel}"
        )

    @torch.no_grad()
    def set_expression_stats(self, expressions: Tensor) -> None:
        """Standardise with the mean and std of ``expressions`` ``(N, K)`` (training frames)."""
        e = torch.as_tensor(expressions, dtype=self.mean.dtype)
        if e.ndim != 2 or e.shape[1] != self.mean.numel():
            raise ValueError(f"expressions must be (N, {self.mean.numel()}), got {tuple(e.shape)}")
        self.mean.copy_(e.mean(0))
        self.std.copy_(e.std(0).clamp(min=1e-6) if len(e) > 1 else torch.ones_like(self.std))

    def filters(self, expression: Tensor) -> Tensor:
        """Per-frame filters ``(B, channels, intermediate_channels, k, k)``.

        Args:
            expression: ``(B, K)`` expression coefficients (the face model's units).
        """
        if expression.ndim != 2 or expression.shape[1] != self.mean.numel():
            raise ValueError(
                f"expression must be (B, {self.mean.numel()}), got {tuple(expression.shape)}"
            )
        e = (expression.to(self.mean) - self.mean) / self.std
        k = self.kernel
        delta = torch.tanh(self.mlp(e)).view(-1, self.channels, self.intermediate_channels, k, k)
        return self.base + self.scale * delta

    def textures(self, expression: Tensor) -> Tensor:
        """The filtered textures ``(B, channels, size, size)`` of each frame's expression."""
        w = self.filters(expression)
        b = w.shape[0]
        tex = self.base_texture.dense()[None]
        out = F.conv2d(tex, w.flatten(0, 1), padding=self.kernel // 2)  # (1, B·C, T, T)
        return out.view(b, self.channels, self.size, self.size)

    def sample(self, uv: Tensor, expression: Tensor) -> tuple[Tensor, Tensor]:
        """Features at the UVs of each frame's filtered texture, and the validity mask.

        Args:
            uv: ``(B, H, W, 2)`` float UV map, negative on background (see :class:`NeuralTexture`).
            expression: ``(B, K)`` expression coefficients of the same frames.

        Returns:
            ``features`` ``(B, channels, H, W)``, exactly 0 on background, and ``mask``
            ``(B, 1, H, W)`` bool.
        """
        uv = _check_uv(uv).to(self.base.device)
        if expression.shape[0] != uv.shape[0]:
            raise ValueError(f"expression has {expression.shape[0]} rows for {uv.shape[0]} UV maps")
        dtype = self.base.dtype
        mask = uv_valid_mask(uv)
        tex = self.textures(expression.to(uv.device))
        s = F.grid_sample(
            tex, uv_to_grid(uv, dtype), mode="bilinear", padding_mode="border", align_corners=False
        )
        return torch.where(mask, s, torch.zeros((), dtype=dtype, device=s.device)), mask

    def forward(self, uv: Tensor, expression: Tensor) -> Tensor:
        """Features ``(B, channels, H, W)`` (see :meth:`sample`)."""
        return self.sample(uv, expression)[0]
