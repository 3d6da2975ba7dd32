"""Texture helpers for UV maps: unwrap video colours into a texture and render it back.

They are used to check that UV maps are consistent over a video (unwrap the texture from one
frame, render it at the pose of another, compare) and to build simple static textures.

Conventions
-----------
* A UV map is ``(..., H, W, 2)`` float with (u, v) in ``[0, 1]`` on covered pixels and ``-1``
  (any negative value) on background, as produced by :func:`nvp.raster.render_uv_mask`.
* A texture is ``(T_h, T_w, C)`` (or batched ``(B, T_h, T_w, C)``) float, channels last.
  ``u`` selects the texture **column**, ``v`` the texture **row**: texel ``(r, c)`` covers
  ``u in [c / T_w, (c + 1) / T_w)``, ``v in [r / T_h, (r + 1) / T_h)`` and is centred on
  ``((c + 0.5) / T_w, (r + 0.5) / T_h)``; ``u = 1`` (or ``v = 1``) falls into the last texel.
* A weight map is ``(T_h, T_w)`` (or ``(B, T_h, T_w)``): texels with weight ``> 0`` are known,
  the others were never written and carry no colour.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["fill_texture_holes", "sample_texture", "unwrap_texture"]


def _uv_valid(uv: Tensor) -> Tensor:
    """Covered pixels of a UV map: both coordinates finite and non-negative."""
    return (torch.isfinite(uv) & (uv >= 0)).all(-1)


def _check_uv(uv: object, name: str = "uv") -> Tensor:
    if not isinstance(uv, Tensor) or uv.ndim not in (3, 4) or uv.shape[-1] != 2:
        shape = tuple(uv.shape) if isinstance(uv, Tensor) else type(uv)
        raise ValueError(f"{name} must have shape (H, W, 2) or (B, H, W, 2), got {shape}")
    if not uv.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {uv.dtype}")
    return uv


def unwrap_texture(image: Tensor, uv: Tensor, tex_size: int) -> tuple[Tensor, Tensor]:
    """Scatter the colours of the covered pixels into the texels their UV falls in (mean).

    Args:
        image: ``(H, W, C)`` or ``(B, H, W, C)`` float colours (any range).
        uv: ``(H, W, 2)`` or ``(B, H, W, 2)`` UV map of the same frames, ``-1`` on background.
            With several frames, all of them are averaged into one texture.
        tex_size: side of the square texture, in texels.

    Returns:
        ``texture`` ``(tex_size, tex_size, C)`` (mean colour per texel, ``0`` where nothing
        fell) and ``weight`` ``(tex_size, tex_size)`` float (number of pixels per texel), both
        in the dtype of ``image`` (at least float32).
    """
    if not isinstance(image, Tensor) or image.ndim not in (3, 4):
        shape = tuple(image.shape) if isinstance(image, Tensor) else type(image)
        raise ValueError(f"image must have shape (H, W, C) or (B, H, W, C), got {shape}")
    if not image.is_floating_point():
        raise ValueError(
            f"image must be a floating-point tensor (convert uint8 with .float() / 255), "
            f"got {image.dtype}"
        )
    uv = _check_uv(uv)
    if image.shape[:-1] != uv.shape[:-1]:
        raise ValueError(
            f"image {tuple(image.shape)} and uv {tuple(uv.shape)} must cover the same "
            f"frames and pixels (same leading dimensions)"
        )
    if not isinstance(tex_size, int) or isinstance(tex_size, bool) or tex_size <= 0:
        raise ValueError(f"tex_size must be a positive int, got {tex_size!r}")
    dtype = torch.promote_types(image.dtype, torch.float32)
    channels = image.shape[-1]
    valid = _uv_valid(uv)
    coords = uv[valid].to(dtype)  # (N, 2)
    colours = image[valid].to(dtype)  # (N, C)
    texel = (coords * tex_size).floor().long().clamp_(0, tex_size - 1)
    index = texel[:, 1] * tex_size + texel[:, 0]  # row from v, column from u
    total = torch.zeros(tex_size * tex_size, channels, dtype=dtype, device=image.device)
    total.index_add_(0, index, colours)
    count = torch.zeros(tex_size * tex_size, dtype=dtype, device=image.device)
    count.index_add_(0, index, torch.ones_like(index, dtype=dtype))
    texture = total / count.clamp(min=1.0)[:, None]
    return texture.view(tex_size, tex_size, channels), count.view(tex_size, tex_size)


def sample_texture(
    texture: Tensor,
    uv: Tensor,
    align_corners: bool = False,
    *,
    weight: Tensor | None = None,
    mode: str = "bilinear",
) -> Tensor:
    """Render a texture through a UV map (``grid_sample``), consistently with unwrap_texture.

    The UV → grid mapping is chosen for the given ``align_corners`` so that texel ``(r, c)`` is
    always centred on ``u = (c + 0.5) / T_w``, ``v = (r + 0.5) / T_h`` (the convention of
    :func:`unwrap_texture`); beyond the outermost texel centres the border texels are repeated.

    Args:
        texture: ``(T_h, T_w, C)`` shared by all frames or ``(B, T_h, T_w, C)`` per frame.
        uv: ``(B, H, W, 2)`` (or ``(H, W, 2)``) UV map, negative on background.
        align_corners: passed to ``grid_sample`` (the mapping compensates, see above).
        weight: optional ``(T_h, T_w)`` / ``(B, T_h, T_w)`` weight or bool validity map; only
            texels with weight ``> 0`` contribute (the interpolation weights are renormalised
            over them), so never-written texels do not darken the result.
        mode: ``"bilinear"`` or ``"nearest"``.

    Returns:
        ``(B, H, W, C)`` (or ``(H, W, C)``) in the texture's dtype; ``0`` on background pixels
        and where only never-written texels are in reach.
    """
    uv = _check_uv(uv)
    unbatched = uv.ndim == 3
    if unbatched:
        uv = uv[None]
    if not isinstance(texture, Tensor) or texture.ndim not in (3, 4):
        shape = tuple(texture.shape) if isinstance(texture, Tensor) else type(texture)
        raise ValueError(f"texture must have shape (T, T, C) or (B, T, T, C), got {shape}")
    if not texture.is_floating_point():
        raise ValueError(f"texture must be a floating-point tensor, got {texture.dtype}")
    if mode not in ("bilinear", "nearest"):
        raise ValueError(f"mode must be 'bilinear' or 'nearest', got {mode!r}")
    b = uv.shape[0]
    tex = texture if texture.ndim == 4 else texture[None]
    if tex.shape[0] not in (1, b):
        raise ValueError(f"texture has batch size {tex.shape[0]} but uv has {b} frames")
    t_h, t_w, channels = tex.shape[1:]
    tex = tex.permute(0, 3, 1, 2).expand(b, channels, t_h, t_w)
    dtype = tex.dtype

    valid = _uv_valid(uv)
    coords = torch.where(valid[..., None], uv, 0.0).to(dtype)
    # Continuous texel coordinate (texel c spans [c, c + 1), centre c + 0.5) minus 0.5 is the
    # "index" coordinate grid_sample interpolates on; normalise it for the chosen convention.
    grid = []
    for k, n in ((0, t_w), (1, t_h)):
        idx = coords[..., k] * n - 0.5
        if align_corners:
            grid.append(idx * (2.0 / (n - 1)) - 1.0 if n > 1 else torch.zeros_like(idx))
        else:
            grid.append((2.0 * idx + 1.0) / n - 1.0)
    grid_t = torch.stack(grid, -1)

    def _sample(x: Tensor) -> Tensor:
        return F.grid_sample(
            x, grid_t, mode=mode, padding_mode="border", align_corners=align_corners
        )

    if weight is None:
        out = _sample(tex)
    else:
        if not isinstance(weight, Tensor) or weight.shape[-2:] != (t_h, t_w):
            shape = tuple(weight.shape) if isinstance(weight, Tensor) else type(weight)
            raise ValueError(
                f"weight must have shape ({t_h}, {t_w}) or (B, {t_h}, {t_w}), got {shape}"
            )
        if weight.ndim not in (2, 3) or (weight.ndim == 3 and weight.shape[0] not in (1, b)):
            raise ValueError(
                f"weight must have shape ({t_h}, {t_w}) or (B, {t_h}, {t_w}) with B = {b}, "
                f"got {tuple(weight.shape)}"
            )
        known = (weight > 0).to(dtype=dtype, device=tex.device)
        known = known.reshape(-1, 1, t_h, t_w).expand(b, 1, t_h, t_w)
        num = _sample(tex * known)
        den = _sample(known)
        out = torch.where(den > 1e-6, num / den.clamp(min=1e-6), 0.0)
    out = out.permute(0, 2, 3, 1) * valid[..., None].to(dtype)
    return out[0] if unbatched else out


def fill_texture_holes(
    texture: Tensor, weight: Tensor, iterations: int | None = None
) -> tuple[Tensor, Tensor]:
    """Fill never-written texels by iterative dilation (mean of the known 3x3 neighbours).

    Each iteration gives every unknown texel that touches a known one the mean of its known
    neighbours (8-connectivity), so known texels are untouched and a texture unwrapped from one
    frame can be rendered at another pose without black gaps.

    Args:
        texture: ``(T_h, T_w, C)`` or ``(B, T_h, T_w, C)`` float.
        weight: ``(T_h, T_w)`` or ``(B, T_h, T_w)`` weight or bool map, known where ``> 0``.
        iterations: number of dilation steps (each grows the known region by one texel);
            ``None`` repeats until every texel reachable from a known one is filled.

    Returns:
        The filled ``texture`` (same shape and dtype) and ``known`` (same shape as ``weight``,
        bool): texels that now carry a colour.
    """
    if not isinstance(texture, Tensor) or texture.ndim not in (3, 4):
        shape = tuple(texture.shape) if isinstance(texture, Tensor) else type(texture)
        raise ValueError(f"texture must have shape (T, T, C) or (B, T, T, C), got {shape}")
    if not texture.is_floating_point():
        raise ValueError(f"texture must be a floating-point tensor, got {texture.dtype}")
    if not isinstance(weight, Tensor) or weight.shape != texture.shape[:-1]:
        shape = tuple(weight.shape) if isinstance(weight, Tensor) else type(weight)
        raise ValueError(
            f"weight must have shape {tuple(texture.shape[:-1])} (the texture without its "
            f"channels), got {shape}"
        )
    if iterations is not None and (not isinstance(iterations, int) or iterations < 0):
        raise ValueError(f"iterations must be a non-negative int or None, got {iterations!r}")
    t_h, t_w, channels = texture.shape[-3:]
    tex = texture.reshape(-1, t_h, t_w, channels).permute(0, 3, 1, 2)
    known = (weight > 0).reshape(-1, 1, t_h, t_w).to(texture.device)
    tex = torch.where(known, tex, 0.0)
    max_steps = t_h + t_w if iterations is None else iterations
    for _ in range(max_steps):
        k = known.to(tex.dtype)
        num = F.avg_pool2d(tex * k, 3, stride=1, padding=1, count_include_pad=True)
        den = F.avg_pool2d(k, 3, stride=1, padding=1, count_include_pad=True)
        grow = ~known & (den > 0)
        if not bool(grow.any()):
            break
        tex = torch.where(grow, num / den.clamp(min=1e-12), tex)
        known = known | grow
    filled = tex.permute(0, 2, 3, 1).reshape(texture.shape)
    return filled, known.reshape(weight.shape)
