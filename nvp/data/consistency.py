"""Numerical check that a store's UV maps are consistent over time.

Unwrap the face texture of frame ``a`` through its UV map, render it back
through the UV map of frame ``b`` and compare with frame ``b`` on the face
region. With ``a == b`` this measures the texture round trip alone (texel
quantisation, holes); with ``a != b`` it measures whether the same texel lands
on the same point of the face in another frame (tracking + mesh + raster). A
deliberately shifted UV map gives the "lands off the face" reference value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nvp.data.store import SequenceStore
from nvp.raster.texture import fill_texture_holes, sample_texture, unwrap_texture


def masked_psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """PSNR in dB of two (H, W, 3) images in [0, 1] over the pixels where ``mask`` is true."""
    m = mask.astype(bool)
    mse = float(((a[m] - b[m]) ** 2).mean()) if m.any() else float("nan")
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def _frame(store: SequenceStore, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    img = np.asarray(store["frames"][i]).astype(np.float32) / 255
    uv = np.asarray(store["uv"][i]).astype(np.float32)
    mask = np.asarray(store["mask"][i]) > 0
    return img, uv, mask


def transfer(
    store: SequenceStore, a: int, b: int, tex_size: int = 256, shift_px: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Render frame ``a``'s unwrapped texture through frame ``b``'s UV map.

    Args:
        shift_px: shift frame ``b``'s UV map by this many pixels (to the right) before
            rendering: a reference for misregistered UVs.

    Returns:
        rendered (H, W, 3) in [0, 1], and the face mask (H, W) bool where it is defined.
    """
    img_a, uv_a, _ = _frame(store, a)
    _, uv_b, mask_b = _frame(store, b)
    if shift_px:
        uv_b = np.roll(uv_b, shift_px, axis=1)
        mask_b = np.roll(mask_b, shift_px, axis=1) & mask_b
    tex, w = unwrap_texture(torch.from_numpy(img_a), torch.from_numpy(uv_a), tex_size)
    tex, known = fill_texture_holes(tex, w)
    out = sample_texture(tex, torch.from_numpy(uv_b)[None], weight=known)[0].numpy()
    return out, mask_b


@dataclass
class ConsistencyReport:
    """Face-region PSNR (dB) of texture transfers within one store."""

    self_psnr: float
    """Frame rendered from its own unwrapped texture (round-trip quality)."""
    neighbour_psnr: float
    """Texture of frame t rendered at frame t + ``gap`` (consistency over time)."""
    far_psnr: float
    """Texture of frame t rendered at a far frame (other expression and pose)."""
    shifted_psnr: float
    """As ``neighbour_psnr`` but with the target UV map shifted by 5 % of the crop: what
    misregistered UVs would score."""
    still_psnr: float
    """Frame t compared with frame t + ``gap`` directly, without any warping."""


def consistency_report(store: SequenceStore, n_pairs: int = 6, gap: int = 2) -> ConsistencyReport:
    """Average face-region PSNRs over ``n_pairs`` frame pairs spread over the store."""
    n = store.n_frames
    idx = np.linspace(0, n - 1 - gap, n_pairs).round().astype(int)
    shift = max(1, round(0.05 * store.size))
    vals: dict[str, list[float]] = {"self": [], "near": [], "far": [], "shift": [], "still": []}
    for i in idx:
        far = (i + n // 2) % n
        for key, b, s in (
            ("self", i, 0),
            ("near", i + gap, 0),
            ("far", far, 0),
            ("shift", i + gap, shift),
        ):
            out, m = transfer(store, int(i), int(b), shift_px=s)
            vals[key].append(masked_psnr(out, _frame(store, int(b))[0], m))
        vals["still"].append(direct_psnr(store, int(i), int(i) + gap))
    mean = {k: float(np.mean(v)) for k, v in vals.items()}
    return ConsistencyReport(mean["self"], mean["near"], mean["far"], mean["shift"], mean["still"])


def direct_psnr(store: SequenceStore, a: int, b: int) -> float:
    """Face-region PSNR between frames ``a`` and ``b`` themselves (no warping): how much the
    face changed between them, the scale against which a transfer is judged."""
    img_a, _, _ = _frame(store, a)
    img_b, _, mask_b = _frame(store, b)
    return masked_psnr(img_a, img_b, mask_b)
