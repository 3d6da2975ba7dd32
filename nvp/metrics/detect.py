"""Landmark detection for the landmark metrics: MediaPipe Face Mesh or dlib's 68 points.

* ``mediapipe``: :mod:`nvp.tracking.landmarks` in static mode (each image on its own), 468
  points, layout :func:`~nvp.metrics.landmarks.mediapipe_layout`;
* ``dlib``: dlib's HOG frontal face detector (image upsampled once, so faces down to ~40 px
  are found) and the 68-point shape predictor ``shape_predictor_68_face_landmarks.dat`` (the
  iBUG 300-W scheme the paper's landmark distance used), layout
  :data:`~nvp.metrics.landmarks.DLIB68`. Needs ``requirements/metrics.txt``: ``dlib-bin``
  (dlib's prebuilt wheel) and ``face-recognition-models``, which ships the ``.dat`` file;
  that package's own ``import`` fails on current setuptools (it imports ``pkg_resources``),
  so the file is located through the installed distribution's file list instead.

When several faces are found, the largest (detection box / landmark bounding box) is kept.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from nvp.errors import MissingDependencyError
from nvp.metrics.landmarks import DLIB68, LandmarkLayout, MouthLandmarkDistance, mediapipe_layout

__all__ = [
    "DLIB_PREDICTOR_FILENAME",
    "MouthLandmarkResult",
    "default_dlib_predictor_path",
    "detect_landmarks",
    "dlib_faces",
    "mouth_landmark_distance",
]

DLIB_PREDICTOR_FILENAME = "shape_predictor_68_face_landmarks.dat"

Backend = Literal["mediapipe", "dlib"]
Images = np.ndarray | Sequence[np.ndarray]


def default_dlib_predictor_path() -> Path | None:
    """``shape_predictor_68_face_landmarks.dat`` of the installed ``face-recognition-models``
    distribution (found from its file list, without importing it), or None."""
    from importlib import metadata

    try:
        dist = metadata.distribution("face-recognition-models")
    except metadata.PackageNotFoundError:
        return None
    for f in dist.files or []:
        if Path(str(f)).name == DLIB_PREDICTOR_FILENAME:
            path = Path(str(dist.locate_file(f)))
            return path if path.is_file() else None
    return None


def _import_dlib() -> Any:
    try:
        import dlib
    except ImportError as exc:
        raise MissingDependencyError(
            f"dlib is not installed ({exc}); the dlib landmark backend needs "
            "requirements/metrics.txt: pip install -c requirements/constraints.txt "
            "-r requirements/metrics.txt (dlib-bin, face-recognition-models)"
        ) from exc
    return dlib


def check_backend(backend: str) -> None:
    """Fail early (e.g. before an evaluation renders anything) when ``backend`` cannot run:
    loads dlib's models for ``dlib`` (cached), imports MediaPipe's face mesh otherwise.

    Raises:
        MissingDependencyError: the backend's package or model file is absent.
    """
    if backend == "dlib":
        _dlib_models(None)
    else:
        from nvp.tracking.landmarks import _face_mesh_module

        _face_mesh_module()


@functools.lru_cache(maxsize=4)
def _dlib_models(predictor_path: str | None) -> tuple[Any, Any]:
    """(frontal face detector, 68-point shape predictor); cached (loading takes ~1 s)."""
    dlib = _import_dlib()
    path = default_dlib_predictor_path() if predictor_path is None else Path(predictor_path)
    if path is None or not path.is_file():
        raise MissingDependencyError(
            f"dlib's 68-point model {DLIB_PREDICTOR_FILENAME} is missing"
            + (" (face-recognition-models is not installed)" if path is None else "")
            + ": pip install -c requirements/constraints.txt -r requirements/metrics.txt "
            "(face-recognition-models ships it), or pass its path as predictor_path",
            path=path,
        )
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(path))


def dlib_faces(
    image: np.ndarray, predictor_path: str | Path | None = None, upsample: int = 1
) -> np.ndarray:
    """dlib's 68 landmarks of every face found in one image, largest detection first.

    Args:
        image: (H, W, 3) uint8 RGB.
        predictor_path: ``shape_predictor_68_face_landmarks.dat``; None: the one
            ``face-recognition-models`` installs.
        upsample: times the detector upsamples the image (1: faces down to ~40 px).

    Returns:
        (F, 68, 2) float32 pixel coordinates (x right, y down), F >= 0.

    Raises:
        MissingDependencyError: dlib or the predictor file is absent.
    """
    detector, predictor = _dlib_models(None if predictor_path is None else str(predictor_path))
    img = np.ascontiguousarray(_check_image(image))
    rects = sorted(detector(img, upsample), key=lambda r: -r.area())
    out = np.empty((len(rects), 68, 2), np.float32)
    for k, rect in enumerate(rects):
        shape = predictor(img, rect)
        out[k] = [(p.x, p.y) for p in shape.parts()]
    return out


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"expected an (H, W, 3) uint8 RGB image, got shape {image.shape} {image.dtype}"
        )
    return image


def detect_landmarks(
    images: Images,
    backend: Backend = "mediapipe",
    *,
    predictor_path: str | Path | None = None,
    upsample: int = 1,
) -> tuple[np.ndarray, LandmarkLayout]:
    """2-D landmarks of the largest face in each image.

    Args:
        images: (N, H, W, 3) uint8 RGB, or a sequence of (H_i, W_i, 3) images.
        backend: ``"mediapipe"`` (468 points) or ``"dlib"`` (68 points).
        predictor_path, upsample: dlib only (see :func:`dlib_faces`).

    Returns:
        landmarks: (N, L, 2) float32 pixels; all-NaN rows for images without a face.
        layout: the :class:`~nvp.metrics.landmarks.LandmarkLayout` of ``L`` points.

    Raises:
        MissingDependencyError: the backend's package or model file is absent.
        ValueError: unknown backend.
    """
    if backend == "mediapipe":
        from nvp.tracking.landmarks import N_LANDMARKS, LandmarkDetector

        out = np.full((len(images), N_LANDMARKS, 2), np.nan, np.float32)
        with LandmarkDetector(static=True) as det:
            for i, image in enumerate(images):
                lm = det(_check_image(image))
                if lm is not None:
                    out[i] = lm[:, :2]
        return out, mediapipe_layout()
    if backend == "dlib":
        out = np.full((len(images), 68, 2), np.nan, np.float32)
        for i, image in enumerate(images):
            faces = dlib_faces(image, predictor_path, upsample)
            if len(faces):
                out[i] = faces[0]
        return out, DLIB68
    raise ValueError(f"backend must be 'mediapipe' or 'dlib', got {backend!r}")


@dataclass
class MouthLandmarkResult:
    """What :func:`mouth_landmark_distance` measured.

    Attributes:
        value: mean mouth landmark distance over this call's usable frames (relative to the
            inter-ocular distance, or pixels); NaN when no frame was usable.
        used: frames with a face found on both sides.
        skipped: frames left out because no face was found in the prediction or the target.
        metric: the :class:`~nvp.metrics.landmarks.MouthLandmarkDistance` that was updated
            (its ``compute()`` covers every call that shared it).
    """

    value: float
    used: int
    skipped: int
    metric: MouthLandmarkDistance


def mouth_landmark_distance(
    pred_images: Images,
    gt_images: Images,
    backend: Backend = "mediapipe",
    relative: bool = True,
    *,
    metric: MouthLandmarkDistance | None = None,
    predictor_path: str | Path | None = None,
    upsample: int = 1,
) -> MouthLandmarkResult:
    """Detect landmarks on generated and real frames and update a mouth landmark distance.

    Frames where either side has no face are skipped and counted.

    Args:
        pred_images: (N, H, W, 3) uint8 RGB generated frames (or a sequence of images).
        gt_images: the N real frames, same sizes.
        backend: landmark detector (see :func:`detect_landmarks`).
        relative: divide by the real frame's inter-ocular distance (the paper's measure);
            False: pixels. Ignored when ``metric`` is given (its own setting holds).
        metric: a metric to accumulate into (its layout must match the backend); None: a new
            one.
        predictor_path, upsample: dlib only.

    Returns:
        :class:`MouthLandmarkResult`.
    """
    if len(pred_images) != len(gt_images):
        raise ValueError(f"{len(pred_images)} generated frames but {len(gt_images)} real ones")
    if backend not in ("mediapipe", "dlib"):
        raise ValueError(f"backend must be 'mediapipe' or 'dlib', got {backend!r}")
    if metric is not None:
        expected = DLIB68.name if backend == "dlib" else mediapipe_layout().name
        if metric.layout.name != expected:
            raise ValueError(
                f"the metric's landmark layout is {metric.layout.name}, the {backend} "
                f"backend's is {expected}"
            )
    kw: dict[str, Any] = {"predictor_path": predictor_path, "upsample": upsample}
    pred, layout = detect_landmarks(pred_images, backend, **kw)
    gt, _ = detect_landmarks(gt_images, backend, **kw)
    if metric is None:
        metric = MouthLandmarkDistance(layout, relative=relative)
    ok = ~(np.isnan(pred).any((1, 2)) | np.isnan(gt).any((1, 2)))
    value = float("nan")
    if ok.any():
        probe = MouthLandmarkDistance(layout, relative=metric.relative)
        p, t = torch.from_numpy(pred[ok]), torch.from_numpy(gt[ok])
        probe.update(p, t)
        metric.update(p, t)
        value = float(probe.compute())
    return MouthLandmarkResult(value, int(ok.sum()), int((~ok).sum()), metric)
