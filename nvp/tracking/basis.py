"""The generic expression basis learned over a corpus of stores (``nvp build-face-model``).

1. Reference shape: start from the current model's mean; per iteration, fit every
   frame's similarity on the stable points, estimate each sequence's identity
   (closed-mouth frames) in the aligned space, and set the reference to the
   frontalized mean of the identities (generalized Procrustes).
2. Expression offsets: every valid frame's aligned shape minus its sequence's
   identity, accumulated as a (3V × 3V) second-moment matrix, so memory does
   not grow with the corpus (a 300k-frame corpus is fine).
3. PCA: eigenvectors of that matrix, largest first. K is the requested number
   (76 by default, as the paper) unless the data cannot support it: at most
   (frames − sequences) components, and none whose std is below
   ``min_relative_std`` of the first. MediaPipe's output is itself low-rank
   (its singular values fall below 1e-4 of the first after ~48 components), so
   a small corpus keeps fewer than 76.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nvp.config import FaceModelConfig
from nvp.data.store import SequenceStore
from nvp.errors import InputError
from nvp.tracking import topology
from nvp.tracking.face_model import FaceModel, frontalize, model_from_mean, normalize_shape
from nvp.tracking.fit import align, estimate_identity, fit_pose
from nvp.tracking.landmarks import FACE_MISSING

log = logging.getLogger(__name__)

REPORT_KS = (1, 2, 3, 5, 10, 20, 40, 76)


@dataclass
class BasisReport:
    """What the PCA found (all fractions in [0, 1])."""

    n_sequences: int
    n_frames: int
    requested: int
    kept: int
    why: str
    cumulative: dict[int, float] = field(default_factory=dict)
    """Cumulative explained variance over all vertices at K = 1, 2, 3, 5, 10, 20, 40, 76, kept."""
    cumulative_lips: dict[int, float] = field(default_factory=dict)
    """The same over the 40 lip vertices."""

    def lines(self) -> list[str]:
        out = [
            f"corpus: {self.n_sequences} sequences, {self.n_frames} frames",
            f"expression basis: K = {self.kept} (requested {self.requested}; {self.why})",
            "cumulative explained variance (all vertices / lips):",
        ]
        for k in sorted(self.cumulative):
            out.append(
                f"  K = {k:3d}: {100 * self.cumulative[k]:7.3f} % / "
                f"{100 * self.cumulative_lips[k]:7.3f} %"
            )
        return out


def _load(store: SequenceStore) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(store["landmarks"][...]), np.asarray(store["face_flag"][...])


def learn_basis(
    stores: list[SequenceStore], start: FaceModel, cfg: FaceModelConfig
) -> tuple[FaceModel, BasisReport]:
    """Learn a face model (mean + expression basis) from the landmarks of ``stores``.

    Args:
        stores: finished sequence stores (their ``landmarks`` and ``face_flag`` are read).
        start: the model whose mean starts the reference iteration (e.g. the template).
        cfg: basis size and fitting settings.

    Raises:
        InputError: no store, or too few valid frames to learn anything.
    """
    if not stores:
        raise InputError("no finished sequence stores to learn a face model from")
    pts = list(cfg.tracking.pose_points)
    data = [_load(s) for s in stores]
    ref = start.mean.astype(np.float64)
    tmp_model = start
    for _ in range(max(1, cfg.iterations)):
        ids = []
        for lm, flags in data:
            pose = fit_pose(lm, tmp_model, pts, cfg.tracking.pose_smooth_sigma)
            aligned = align(lm, pose)
            ids.append(
                estimate_identity(
                    aligned, cfg.tracking.identity_closed_fraction, flags != FACE_MISSING
                )
            )
        ref = normalize_shape(frontalize(np.mean(ids, axis=0)))
        tmp_model = model_from_mean(ref, frontal=True, name="reference")

    V = ref.shape[0]
    second = np.zeros((3 * V, 3 * V), np.float64)
    n_frames = 0
    for lm, flags in data:
        valid = flags != FACE_MISSING
        pose = fit_pose(lm, tmp_model, pts, cfg.tracking.pose_smooth_sigma)
        aligned = align(lm, pose)
        identity = estimate_identity(aligned, cfg.tracking.identity_closed_fraction, valid)
        x = (aligned[valid] - identity).reshape(int(valid.sum()), -1).astype(np.float64)
        second += x.T @ x
        n_frames += len(x)
    if n_frames <= len(stores):
        raise InputError(
            f"too few frames with a face ({n_frames}) in {len(stores)} sequences to learn "
            "an expression basis"
        )
    second /= n_frames
    evals, evecs = np.linalg.eigh(second)
    order = np.argsort(evals)[::-1]
    evals = np.clip(evals[order], 0, None)
    evecs = evecs[:, order]
    std = np.sqrt(evals)
    rank_limit = n_frames - len(stores)
    numerical = int((std >= cfg.min_relative_std * std[0]).sum()) if std[0] > 0 else 0
    # Largest per-vertex displacement std of each component, mm.
    vertex_std = std * np.linalg.norm(evecs.reshape(V, 3, -1), axis=1).max(0)
    above_noise = (
        int(np.flatnonzero(vertex_std >= cfg.min_vertex_std_mm).max() + 1)
        if (vertex_std >= cfg.min_vertex_std_mm).any()
        else 0
    )
    k = min(cfg.n_components, rank_limit, numerical, above_noise)
    if k == cfg.n_components:
        why = "as requested"
    elif k == rank_limit:
        why = f"limited by the data: {n_frames} frames - {len(stores)} sequences"
    elif k == above_noise:
        why = (
            f"only {above_noise} components move a vertex by more than "
            f"{cfg.min_vertex_std_mm:g} mm (std); the rest models landmark noise"
        )
    else:
        why = (
            f"only {numerical} components have a std above {cfg.min_relative_std:g} "
            "of the first; the rest is numerically zero"
        )
    total = evals.sum()
    lips = topology.lip_vertices()
    lip_rows = (lips[:, None] * 3 + np.arange(3)).ravel()
    lip_energy = (evecs[lip_rows] ** 2).sum(0) * evals  # variance on lip coordinates per comp
    lip_total = np.trace(second[np.ix_(lip_rows, lip_rows)])
    report = BasisReport(len(stores), n_frames, cfg.n_components, k, why)
    for kk in sorted({*REPORT_KS, k}):
        if kk <= len(evals):
            report.cumulative[kk] = float(evals[:kk].sum() / total) if total > 0 else 0.0
            report.cumulative_lips[kk] = (
                float(lip_energy[:kk].sum() / lip_total) if lip_total > 0 else 0.0
            )
    basis = evecs[:, :k].reshape(V, 3, k).astype(np.float32)
    model = model_from_mean(
        ref,
        basis,
        frontal=True,
        name="nvp-pca",
        stddev=std[:k].astype(np.float32),
        explained_variance=(evals[:k] / total).astype(np.float32) if total > 0 else None,
        info={
            "sequences": [s.name for s in stores],
            "n_frames": n_frames,
            "requested_components": cfg.n_components,
            "why": why,
            "cumulative_explained_variance": {str(a): b for a, b in report.cumulative.items()},
        },
    )
    return model, report


def build_face_model(
    dataset: str | Path, cfg: FaceModelConfig, start: FaceModel
) -> tuple[FaceModel, BasisReport]:
    """Learn a face model from every finished store of a dataset folder (does not write)."""
    from nvp.data.store import find_stores

    stores = [SequenceStore(p) for p in find_stores(dataset)]
    if not stores:
        raise InputError("dataset has no finished sequence stores", path=dataset)
    return learn_basis(stores, start, cfg)
