"""Metrics as torchmetrics ``Metric`` objects (DDP-reduced, one instance per split)."""

from nvp.metrics.expression import VertexRMSE, mouth_opening_mm
from nvp.metrics.image import MaskedPSNR, MeanColourL2
from nvp.metrics.landmarks import DLIB68, MouthLandmarkDistance, mediapipe_layout
from nvp.metrics.sync import SyncProxy, sync_proxy

__all__ = [
    "DLIB68",
    "MaskedPSNR",
    "MeanColourL2",
    "MouthLandmarkDistance",
    "SyncProxy",
    "VertexRMSE",
    "mediapipe_layout",
    "mouth_opening_mm",
    "sync_proxy",
]
