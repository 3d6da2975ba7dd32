"""Expression metrics in millimetres on the face model's mesh."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric


class VertexRMSE(Metric):
    """Root-mean-square vertex error (mm) of expression coefficients through a linear basis.

    ``sqrt(Σ_samples Σ_v w_v ||B_v (pred - target)||² / (n_samples · Σ_v w_v))``, computed
    from the (K, K) weighted Gram matrix of the basis, so no vertices are built.

    Args:
        basis: (V, 3, K) expression basis (mm per coefficient unit).
        weights: (V,) non-negative vertex weights (e.g. 1 on the mouth, 0 elsewhere);
            None = all vertices equally.
    """

    full_state_update = False
    higher_is_better = False

    def __init__(self, basis: Tensor, weights: Tensor | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if weights is None:
            weights = torch.ones(basis.shape[0], dtype=basis.dtype)
        gram = torch.einsum("vck,v,vcl->kl", basis, weights, basis) / weights.sum()
        self.register_buffer("gram", gram.float())
        self.add_state("sum_sq", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor) -> None:
        """pred, target: (N, K) expression coefficients."""
        d = (pred - target).float()
        q = torch.einsum("nk,kl,nl->n", d, self.gram, d)
        self.sum_sq += q.sum().double()
        self.count += q.numel()

    def compute(self) -> Tensor:
        return torch.sqrt(self.sum_sq / self.count.clamp(min=1)).float()


def mouth_opening_mm(identity: Tensor, expression: Tensor, basis: Tensor, pairs: Tensor) -> Tensor:
    """Mouth opening (mean inner-lip pair distance, mm) of ``identity + basis @ expression``.

    Args:
        identity: (N, V, 3) or (V, 3) neutral shapes, mm.
        expression: (N, K) coefficients.
        basis: (V, 3, K).
        pairs: (P, 2) int64 upper/lower inner-lip landmark indices.

    Returns:
        (N,) mm.
    """
    up, lo = pairs[:, 0], pairs[:, 1]
    db = basis[up] - basis[lo]  # (P, 3, K)
    di = identity[..., up, :] - identity[..., lo, :]  # (N|1, P, 3)
    d = di + torch.einsum("pck,nk->npc", db, expression)
    return d.norm(dim=-1).mean(-1)
