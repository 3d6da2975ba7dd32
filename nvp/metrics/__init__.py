"""Metrics as torchmetrics ``Metric`` objects (DDP-reduced, one instance per split)."""

from nvp.metrics.expression import VertexRMSE, mouth_opening_mm
from nvp.metrics.image import MaskedPSNR, MeanColourL2

__all__ = ["MaskedPSNR", "MeanColourL2", "VertexRMSE", "mouth_opening_mm"]
