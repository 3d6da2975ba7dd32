"""Metrics as torchmetrics ``Metric`` objects (DDP-reduced, one instance per split).

The weight-based evaluation metrics (SyncNet, LPIPS) and the landmark detectors load their
models only when constructed or called: importing this package needs none of them.
"""

from nvp.metrics.detect import (
    MouthLandmarkResult,
    default_dlib_predictor_path,
    detect_landmarks,
    dlib_faces,
    mouth_landmark_distance,
)
from nvp.metrics.expression import VertexRMSE, mouth_opening_mm
from nvp.metrics.image import MaskedPSNR, MeanColourL2
from nvp.metrics.landmarks import DLIB68, MouthLandmarkDistance, mediapipe_layout
from nvp.metrics.lips import (
    amplitude_ratio,
    bilabial_closure_rate,
    face_dynamics_deviation,
    lag_correlation,
    lip_motion_summary,
    lip_vertex_error,
    mouth_boxes_from_landmarks,
    mouth_strip,
    open_closed_fractions,
    plot_opening_curves,
)
from nvp.metrics.lpips import LPIPS, LPIPSDistance
from nvp.metrics.sync import SyncProxy, sync_proxy
from nvp.metrics.syncnet import (
    SyncNet,
    SyncNetScorer,
    SyncNetSync,
    load_syncnet,
    sync_scores,
    syncnet_mfcc,
)

__all__ = [
    "DLIB68",
    "LPIPS",
    "LPIPSDistance",
    "MaskedPSNR",
    "MeanColourL2",
    "MouthLandmarkDistance",
    "MouthLandmarkResult",
    "SyncNet",
    "SyncNetScorer",
    "SyncNetSync",
    "SyncProxy",
    "VertexRMSE",
    "amplitude_ratio",
    "bilabial_closure_rate",
    "default_dlib_predictor_path",
    "detect_landmarks",
    "dlib_faces",
    "face_dynamics_deviation",
    "lag_correlation",
    "lip_motion_summary",
    "lip_vertex_error",
    "load_syncnet",
    "mediapipe_layout",
    "mouth_boxes_from_landmarks",
    "mouth_landmark_distance",
    "mouth_opening_mm",
    "mouth_strip",
    "open_closed_fractions",
    "plot_opening_curves",
    "sync_proxy",
    "sync_scores",
    "syncnet_mfcc",
]
