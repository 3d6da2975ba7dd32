"""Per-frame rigid pose, per-sequence identity and per-frame expression against a face model.

Conventions:

* Image space (landmarks, posed vertices): pixels of the face crop, x right,
  y down, z depth (smaller = closer), as MediaPipe's ``(x·W, y·H, z·W)``.
* Model space: mm (see :mod:`nvp.tracking.face_model`).
* Pose (weak perspective similarity): ``x_image = s · R @ x_model + t``,
  stored per frame as 7 floats ``[s, rx, ry, rz, tx, ty, tz]``: scale s in
  pixels per mm, rotation as an axis-angle vector in radians, translation in
  pixels.

A frame's fit: similarity (Umeyama) on the stable points only (eye corners +
nose bridge; all-point fits let mouth opening leak into pitch and scale),
smoothed over time; aligned shape ``R^T (x - t) / s``; identity = mean
aligned shape of the frames with the most closed mouth; expression =
projection of the aligned offset from the identity on the orthonormal basis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.transform import Rotation

from nvp.tracking.face_model import FaceModel, mouth_opening
from nvp.tracking.landmarks import FACE_MISSING

POSE_DIM = 7


def similarity_fit(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares similarity transform (Umeyama 1991), batched over frames.

    Args:
        src: (P, 3) model points.
        dst: (N, P, 3) observed points.

    Returns:
        s: (N,) scale; R: (N, 3, 3) proper rotations; t: (N, 3) so that
        ``dst ≈ s R src + t``.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s = src.mean(0)
    mu_d = dst.mean(1)
    a = src - mu_s
    b = dst - mu_d[:, None]
    cov = np.einsum("npi,pj->nij", b, a) / len(src)
    U, S, Vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(U) * np.linalg.det(Vt))
    D = np.ones((len(dst), 3))
    D[:, 2] = d
    R = np.einsum("nij,nj,njk->nik", U, D, Vt)
    var_s = (a**2).sum(1).mean()
    s = (S * D).sum(1) / var_s
    t = mu_d - s[:, None] * np.einsum("nij,j->ni", R, mu_s)
    return s, R, t


def pose_to_params(s: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(N,) scale, (N, 3, 3) rotation, (N, 3) translation -> (N, 7) float32 pose parameters."""
    rv = Rotation.from_matrix(R).as_rotvec()
    return np.concatenate([s[:, None], rv, t], axis=1).astype(np.float32)


def params_to_pose(pose: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, 7) pose parameters -> scale (N,), rotation (N, 3, 3), translation (N, 3), float64."""
    pose = np.asarray(pose, np.float64)
    return pose[:, 0], Rotation.from_rotvec(pose[:, 1:4]).as_matrix(), pose[:, 4:7]


def smooth_pose(pose: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of (N, 7) pose parameters over time (sigma in frames; 0 = none).

    Scale is smoothed in log space, rotation as a rotation vector (continuous
    for the head rotations of talking-head video), translation directly.
    """
    if sigma <= 0 or len(pose) < 2:
        return pose.copy()
    out = np.asarray(pose, np.float64).copy()
    out[:, 0] = np.exp(gaussian_filter1d(np.log(out[:, 0]), sigma, mode="nearest"))
    out[:, 1:] = gaussian_filter1d(out[:, 1:], sigma, axis=0, mode="nearest")
    return out.astype(np.float32)


def align(landmarks: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """Image-space landmarks (N, V, 3) px to model space with the poses (N, 7): (N, V, 3) mm."""
    s, R, t = params_to_pose(pose)
    x = np.asarray(landmarks, np.float64) - t[:, None]
    return (np.einsum("nji,nvj->nvi", R, x) / s[:, None, None]).astype(np.float32)


def apply_pose(vertices: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """Model-space vertices (N, V, 3) mm to image space with poses (N, 7): (N, V, 3) pixels."""
    s, R, t = params_to_pose(pose)
    v = np.einsum("nij,nvj->nvi", R, np.asarray(vertices, np.float64))
    return (s[:, None, None] * v + t[:, None]).astype(np.float32)


def fit_pose(
    landmarks: np.ndarray, model: FaceModel, points: list[int] | tuple[int, ...], sigma: float
) -> np.ndarray:
    """Per-frame similarity of the model mean to the landmarks on ``points``, smoothed: (N, 7)."""
    pts = list(points)
    s, R, t = similarity_fit(model.mean[pts], landmarks[:, pts])
    return smooth_pose(pose_to_params(s, R, t), sigma)


def estimate_identity(
    aligned: np.ndarray, closed_fraction: float, valid: np.ndarray | None = None
) -> np.ndarray:
    """Identity (neutral) shape of a sequence: the mean of its most closed-mouth frames.

    Args:
        aligned: (N, V, 3) model-space shapes.
        closed_fraction: fraction of frames (the most closed mouths) to average, in (0, 1].
        valid: (N,) bool frames to consider (default all).

    Returns:
        (V, 3) float32, mm.
    """
    if valid is None:
        valid = np.ones(len(aligned), bool)
    cand = np.flatnonzero(valid)
    opening = mouth_opening(aligned[cand])
    k = max(1, round(closed_fraction * len(cand)))
    chosen = cand[np.argsort(opening, kind="stable")[:k]]
    return aligned[chosen].mean(0).astype(np.float32)


def project_expression(aligned: np.ndarray, identity: np.ndarray, model: FaceModel) -> np.ndarray:
    """Expression coefficients: aligned offsets from the identity projected on the basis.

    Args:
        aligned: (N, V, 3) mm. identity: (V, 3) mm.

    Returns:
        (N, K) float32 (K = 0 for a model without basis).
    """
    offs = (aligned - identity).reshape(len(aligned), -1)
    return (offs @ model.basis_flat).astype(np.float32)


@dataclass
class SequenceFit:
    """The geometry of one sequence against a face model."""

    pose: np.ndarray
    """(N, 7) float32 ``[s, rx, ry, rz, tx, ty, tz]`` (s px/mm, radians, px)."""
    identity: np.ndarray
    """(V, 3) float32 mm."""
    expression: np.ndarray
    """(N, K) float32."""

    def vertices(self, model: FaceModel, frames: slice | np.ndarray = slice(None)) -> np.ndarray:
        """Posed model vertices ``s R (identity + B e) + t`` in image pixels: (n, V, 3) float32."""
        shape = model.expression_vertices(self.identity, self.expression[frames])
        return apply_pose(shape, self.pose[frames])


def fit_sequence(
    landmarks: np.ndarray,
    flags: np.ndarray,
    model: FaceModel,
    *,
    points: list[int] | tuple[int, ...],
    pose_sigma: float,
    closed_fraction: float,
) -> SequenceFit:
    """Fit pose, identity and expression of one sequence.

    Args:
        landmarks: (N, V, 3) image-space landmarks (crop pixels).
        flags: (N,) face flags; FACE_MISSING frames are not used for the identity.
        model: the face model.
        points: landmark indices for the rigid fit.
        pose_sigma: temporal smoothing of the pose, frames.
        closed_fraction: fraction of most-closed-mouth frames averaged for the identity.
    """
    pose = fit_pose(landmarks, model, points, pose_sigma)
    aligned = align(landmarks, pose)
    identity = estimate_identity(aligned, closed_fraction, valid=flags != FACE_MISSING)
    expression = project_expression(aligned, identity, model)
    return SequenceFit(pose=pose, identity=identity, expression=expression)
