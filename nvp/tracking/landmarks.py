"""Per-frame face landmarks with MediaPipe Face Mesh (468 points), and gap filling.

MediaPipe returns normalised landmarks; nvp converts them to image pixels as
``(x * W, y * H, z * W)`` (x right, y down, z depth in the units of x, smaller =
closer to the camera). Tracking mode (``static_image_mode=False``) and
``refine_landmarks=False`` are the defaults: measured on real clips, tracking
mode jitters less than static mode and the refine model jitters ~50 % more on
the stable points.

Frame flags (``face_flag`` in the stores): :data:`FACE_DETECTED`,
:data:`FACE_INTERPOLATED` (a short gap filled linearly) and :data:`FACE_MISSING`
(a long gap, held at the nearest detected face; excluded from training).
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterable, Iterator

import numpy as np

from nvp.errors import MissingDependencyError

log = logging.getLogger(__name__)

N_LANDMARKS = 468
FACE_DETECTED = 0
FACE_INTERPOLATED = 1
FACE_MISSING = 2

os.environ.setdefault("GLOG_minloglevel", "2")  # keep MediaPipe's C++ logging quiet
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _face_mesh_module():
    try:
        from mediapipe.python.solutions import face_mesh
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise MissingDependencyError(
            "mediapipe is not installed (or fails to import: "
            f"{exc}); run scripts/setup.sh, which installs mediapipe==0.10.21 with --no-deps"
        ) from exc
    return face_mesh


def _to_pixels(face, width: int, height: int) -> np.ndarray:
    a = np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float32)
    a *= np.array([width, height, width], np.float32)
    return a


def _bbox_area(lm: np.ndarray) -> float:
    span = lm[:, :2].max(0) - lm[:, :2].min(0)
    return float(span[0] * span[1])


class LandmarkDetector:
    """MediaPipe Face Mesh over a stream of frames (tracking mode by default).

    Args:
        static: run detection on every frame (``static_image_mode``) instead of tracking.
        refine: use the attention model (iris/lip refinement; 478 points, first 468 kept).
        max_faces: faces MediaPipe may return; the largest (landmark bounding box) is kept.
        min_detection_confidence, min_tracking_confidence: MediaPipe thresholds in [0, 1].
    """

    def __init__(
        self,
        *,
        static: bool = False,
        refine: bool = False,
        max_faces: int = 2,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
    ) -> None:
        fm = _face_mesh_module()
        self._mesh = fm.FaceMesh(
            static_image_mode=static,
            max_num_faces=max_faces,
            refine_landmarks=refine,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )
        self.frames_with_several_faces = 0

    def __call__(self, frame: np.ndarray) -> np.ndarray | None:
        """Landmarks of the largest face in one RGB frame.

        Args:
            frame: (H, W, 3) uint8 RGB.

        Returns:
            (468, 3) float32 in pixels, or None when no face is found.
        """
        h, w = frame.shape[:2]
        res = self._mesh.process(np.ascontiguousarray(frame))
        faces = res.multi_face_landmarks or []
        if not faces:
            return None
        cands = [_to_pixels(f, w, h)[:N_LANDMARKS] for f in faces]
        if len(cands) > 1:
            self.frames_with_several_faces += 1
        return max(cands, key=_bbox_area)

    def close(self) -> None:
        self._mesh.close()

    def __enter__(self) -> LandmarkDetector:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def detect_image(image: np.ndarray, *, refine: bool = False) -> np.ndarray | None:
    """Landmarks of the largest face in a single still image (static mode): (468, 3) or None."""
    with LandmarkDetector(static=True, refine=refine) as det:
        return det(image)


def track(frames: Iterable[np.ndarray], detector: LandmarkDetector) -> Iterator[np.ndarray | None]:
    """Run ``detector`` over a stream of frames, yielding (468, 3) landmarks or None per frame."""
    for frame in frames:
        yield detector(frame)


def fill_gaps(
    landmarks: list[np.ndarray | None] | np.ndarray, max_gap: int
) -> tuple[np.ndarray, np.ndarray]:
    """Fill frames without a face.

    Runs of at most ``max_gap`` frames between two detections are linearly
    interpolated; longer runs and runs at the start or end of the clip are held
    at the nearest detected face and flagged missing.

    Args:
        landmarks: per frame a (L, 3) array or None (no face).
        max_gap: longest run of missing frames to interpolate, in frames.

    Returns:
        filled: (N, L, 3) float32.
        flags: (N,) uint8 with FACE_DETECTED / FACE_INTERPOLATED / FACE_MISSING.

    Raises:
        ValueError: no frame has a face.
    """
    n = len(landmarks)
    have = np.array([x is not None for x in landmarks])
    if not have.any():
        raise ValueError("no frame has a face")
    idx = np.flatnonzero(have)
    shape = next(x for x in landmarks if x is not None).shape
    out = np.empty((n, *shape), np.float32)
    out[idx] = np.stack([landmarks[i] for i in idx])
    flags = np.full(n, FACE_MISSING, np.uint8)
    flags[idx] = FACE_DETECTED
    # Hold before the first and after the last detection.
    out[: idx[0]] = out[idx[0]]
    out[idx[-1] + 1 :] = out[idx[-1]]
    for a, b in itertools.pairwise(idx):
        gap = b - a - 1
        if gap == 0:
            continue
        w = (np.arange(1, gap + 1, dtype=np.float32) / (gap + 1))[:, None, None]
        out[a + 1 : b] = (1 - w) * out[a] + w * out[b]
        if gap <= max_gap:
            flags[a + 1 : b] = FACE_INTERPOLATED
        else:  # too long to trust interpolation: keep a plausible shape, flag it
            out[a + 1 : b] = np.where(
                np.arange(a + 1, b)[:, None, None] - a <= b - np.arange(a + 1, b)[:, None, None],
                out[a],
                out[b],
            )
    return out, flags
