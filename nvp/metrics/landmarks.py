"""Mouth landmark distance between landmarks detected on generated and real frames.

Two conventions:

* relative (the paper's measure): mean distance of the mouth landmarks divided by
  the inter-ocular distance of the real frame's landmarks (outer eye corners),
  averaged over frames;
* pixels (the NeRF family's "LMD"): mean distance of the mouth landmarks in pixels.

The landmark sets of the two detectors nvp supports are :data:`MEDIAPIPE` (468
points: the 40 lip landmarks, eye corners 33/263) and :data:`DLIB68` (68 points:
mouth 48-67, outer eye corners 36/45, as the paper used).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torchmetrics import Metric


@dataclass(frozen=True)
class LandmarkLayout:
    """Which landmarks are the mouth and which two are the outer eye corners."""

    name: str
    mouth: tuple[int, ...]
    eye_corners: tuple[int, int]


DLIB68 = LandmarkLayout("dlib68", tuple(range(48, 68)), (36, 45))


def mediapipe_layout() -> LandmarkLayout:
    """The MediaPipe Face Mesh layout (lip landmarks from its connection sets)."""
    from nvp.tracking import topology

    return LandmarkLayout(
        "mediapipe", tuple(int(i) for i in topology.lip_vertices()), topology.EYE_CORNERS
    )


class MouthLandmarkDistance(Metric):
    """Mean mouth landmark distance, relative to the inter-ocular distance or in pixels.

    ``update(pred, target)``: (B, L, 2) landmarks in pixels of generated and real frames.

    Args:
        layout: landmark layout (:data:`DLIB68` or :func:`mediapipe_layout`).
        relative: divide each frame's mean distance by the real frame's eye-corner distance.
    """

    full_state_update = False
    higher_is_better = False

    def __init__(self, layout: LandmarkLayout, relative: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.layout = layout
        self.relative = relative
        self.add_state("total", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor) -> None:
        if pred.shape != target.shape or pred.ndim != 3 or pred.shape[-1] < 2:
            raise ValueError(
                f"expected (B, L, 2) landmarks, got {tuple(pred.shape)} and {tuple(target.shape)}"
            )
        mouth = list(self.layout.mouth)
        d = (pred[:, mouth, :2] - target[:, mouth, :2]).double().norm(dim=-1).mean(-1)
        if self.relative:
            a, b = self.layout.eye_corners
            iod = (target[:, a, :2] - target[:, b, :2]).double().norm(dim=-1)
            d = d / iod.clamp(min=1e-9)
        self.total += d.sum()
        self.count += d.numel()

    def compute(self) -> Tensor:
        return (self.total / self.count.clamp(min=1)).float()
