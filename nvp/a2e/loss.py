"""The Audio2Expression loss, measured on the mesh in millimetres.

For an orthonormal expression basis ``B`` (3V × K) and per-vertex weights
``w`` (V,), the weighted squared vertex error of a coefficient error ``d`` is
``Σ_v w_v ||B_v d||² = dᵀ G d`` with ``G = Σ_v w_v B_vᵀ B_v`` (K × K). The loss
therefore never builds vertices: it is exact and costs O(K²) per sample.

``L = RMS_w(v_t - v*_t) + λ · (RMS_w(Δ⁻) + RMS_w(Δ⁺) + RMS_w(Δ⁰))`` with the
backward, forward and central differences of the errors of frames t-1, t, t+1
(all three frames from the same sequence, so no pair crosses a sequence
boundary), ``RMS_w(x) = sqrt(mean_batch Σ_v w_v ||x_v||² / Σ_v w_v)`` in mm.
The identity cancels in every difference (it is the same for prediction and
target), so only expression offsets enter.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nvp.a2e.config import A2ELossConfig


def vertex_weights(mouth_weight: Tensor, mouth_factor: float) -> Tensor:
    """Per-vertex loss weights ``1 + (mouth_factor - 1) * mouth_weight``: (V,)."""
    return 1.0 + (mouth_factor - 1.0) * mouth_weight


def weighted_gram(basis: Tensor, weights: Tensor) -> Tensor:
    """``G = Σ_v w_v B_vᵀ B_v / Σ_v w_v`` for a (V, 3, K) basis and (V,) weights: (K, K)."""
    g = torch.einsum("vck,v,vcl->kl", basis, weights, basis)
    return g / weights.sum()


def rms(d: Tensor, gram: Tensor, eps: float = 1e-12) -> Tensor:
    """Weighted vertex RMS of coefficient errors ``d`` (..., K): ``sqrt(mean dᵀ G d)``, mm."""
    q = torch.einsum("...k,kl,...l->...", d, gram, d)
    return torch.sqrt(q.mean() + eps)


class ExpressionLoss(nn.Module):
    """Vertex-space (mm) loss of predicted vs tracked expressions with a temporal term.

    Args:
        basis: (V, 3, K) orthonormal expression basis, mm per coefficient unit.
        mouth_weight: (V,) in [0, 1].
        cfg: weights and the space (vertex or plain coefficients).
    """

    def __init__(self, basis: Tensor, mouth_weight: Tensor, cfg: A2ELossConfig) -> None:
        super().__init__()
        self.cfg = cfg
        K = basis.shape[-1]
        if cfg.space == "vertex":
            g = weighted_gram(basis, vertex_weights(mouth_weight, cfg.mouth_factor))
        else:
            g = torch.eye(K, dtype=basis.dtype) / K
        self.register_buffer("gram", g.float())

    def forward(
        self, pred: Tensor, target: Tensor, intermediate: Tensor | None = None
    ) -> dict[str, Tensor]:
        """
        Args:
            pred: (B, 3, K) predicted expressions of frames t-1, t, t+1.
            target: (B, 3, K) tracked expressions of the same frames.
            intermediate: (B, K) unfiltered prediction for frame t (release term), optional.

        Returns:
            ``loss`` (scalar), and its parts ``rms`` (frame t, mm), ``temporal`` (mm) and
            ``intermediate`` (mm, 0 when off).
        """
        d = pred - target
        main = rms(d[:, 1], self.gram)
        temporal = (
            rms(d[:, 1] - d[:, 0], self.gram)
            + rms(d[:, 2] - d[:, 1], self.gram)
            + rms(d[:, 2] - d[:, 0], self.gram)
        )
        loss = main + self.cfg.temporal_weight * temporal
        inter = torch.zeros((), device=pred.device)
        if intermediate is not None and self.cfg.intermediate_weight > 0:
            inter = rms(intermediate - target[:, 1], self.gram)
            loss = loss + self.cfg.intermediate_weight * inter
        return {"loss": loss, "rms": main, "temporal": temporal, "intermediate": inter}
