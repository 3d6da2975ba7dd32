"""Metrics as torchmetrics ``Metric`` objects (DDP-reduced, one instance per split)."""

from nvp.metrics.expression import VertexRMSE, mouth_opening_mm

__all__ = ["VertexRMSE", "mouth_opening_mm"]
