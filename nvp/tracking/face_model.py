"""The face model: a linear 3D model over MediaPipe's 468 landmarks, stored as ``.npz``.

A face is ``identity + basis @ expression``: ``identity`` (V, 3) is a person's
neutral shape (estimated per sequence), ``basis`` (V, 3, K) the generic
expression basis learned by PCA over a corpus (``nvp build-face-model``),
``expression`` (K,) the per-frame coefficients. The model also carries the
closed triangle mesh, per-vertex texture coordinates, per-vertex mouth
weights for the Audio2Expression loss, and named landmark index sets.

Units: model space is millimetres, fixed by scaling every shape so that the
outer eye corners (landmarks 33 and 263) of the mean are
:data:`EYE_CORNER_DISTANCE_MM` = 90 mm apart (an average adult's
ex-ex breadth). MediaPipe has no metric depth, so "mm" here means "mm for a
face of average eye-corner breadth"; all vertex errors reported by nvp use it.
The basis is orthonormal (flattened to (3V, K)), so a coefficient is the
Euclidean norm, in mm, of the displacement it causes over all vertices.
Axes follow image space: x right, y down, z away from the camera.

Users with a licensed BFM or FLAME can write the same keys (see
:meth:`FaceModel.save`) for their model; nothing downstream depends on how the
model was made.

The ``.npz`` keys: ``mean`` (V,3) float32 mm; ``basis`` (V,3,K) float32;
``stddev`` (K,) float32 std of the coefficients over the training corpus, mm;
``explained_variance`` (K,) float32 fraction per component; ``triangles`` (F,3)
int32; ``triangle_labels`` (F,) uint8 (1 face, 2 mouth); ``uv`` (V,2) float32
in [0, 1] (u right, v down); ``mouth_weight`` (V,) float32 in [0, 1];
``index_<name>`` int32 landmark index sets; ``meta`` a JSON string (name,
units, version, corpus, hash).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from nvp.errors import InputError
from nvp.tracking import topology

EYE_CORNER_DISTANCE_MM = 90.0
FORMAT_VERSION = 1


@dataclass
class FaceModel:
    """A linear face model over the 468 MediaPipe landmarks (see the module docstring)."""

    mean: np.ndarray
    """(V, 3) float32, mm: the corpus mean neutral shape (frontal; used for the rigid fit)."""
    basis: np.ndarray
    """(V, 3, K) float32: orthonormal expression basis (K may be 0 for the template)."""
    triangles: np.ndarray
    """(F, 3) int32 vertex indices, counter-clockwise in UV space."""
    triangle_labels: np.ndarray
    """(F,) uint8: 1 face, 2 mouth (lips + mouth interior)."""
    uv: np.ndarray
    """(V, 2) float32 texture coordinates in [0, 1] (u to the right, v down)."""
    mouth_weight: np.ndarray
    """(V,) float32 in [0, 1]: 1 on the lips, falling off with distance."""
    indices: dict[str, np.ndarray] = field(default_factory=topology.index_sets)
    """Named landmark index sets (lips, inner_lips, eyes, eye_corners, mouth_opening_pairs)."""
    stddev: np.ndarray | None = None
    """(K,) float32: std of each coefficient over the corpus the basis was learned on, mm."""
    explained_variance: np.ndarray | None = None
    """(K,) float32: fraction of the corpus expression variance per component."""
    name: str = "template"
    """Free-form name (``template`` for the built-in model without expression basis)."""
    info: dict = field(default_factory=dict)
    """Provenance: corpus sequences, frame count, requested K, variance report."""

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.mean, np.float32)
        V = self.mean.shape[0]
        if self.basis is None:
            self.basis = np.zeros((V, 3, 0), np.float32)
        self.basis = np.asarray(self.basis, np.float32)
        K = self.basis.shape[2]
        if self.stddev is None:
            self.stddev = np.ones(K, np.float32)
        if self.explained_variance is None:
            self.explained_variance = np.zeros(K, np.float32)
        if self.mean.shape != (V, 3) or self.basis.shape[:2] != (V, 3):
            raise ValueError(f"mean {self.mean.shape} and basis {self.basis.shape} disagree")
        if self.uv.shape != (V, 2) or self.mouth_weight.shape != (V,):
            raise ValueError("uv must be (V, 2) and mouth_weight (V,)")

    @property
    def n_vertices(self) -> int:
        return self.mean.shape[0]

    @property
    def n_components(self) -> int:
        """K, the number of expression coefficients."""
        return self.basis.shape[2]

    @property
    def basis_flat(self) -> np.ndarray:
        """(3V, K) float32: the basis with vertex coordinates flattened (x0, y0, z0, x1, ...)."""
        return self.basis.reshape(3 * self.n_vertices, self.n_components)

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {
            "mean": self.mean,
            "basis": self.basis,
            "stddev": np.asarray(self.stddev, np.float32),
            "explained_variance": np.asarray(self.explained_variance, np.float32),
            "triangles": np.asarray(self.triangles, np.int32),
            "triangle_labels": np.asarray(self.triangle_labels, np.uint8),
            "uv": np.asarray(self.uv, np.float32),
            "mouth_weight": np.asarray(self.mouth_weight, np.float32),
        }
        for k, v in sorted(self.indices.items()):
            arrays[f"index_{k}"] = np.asarray(v, np.int32)
        return arrays

    @property
    def hash(self) -> str:
        """Content hash (16 hex digits of SHA-256 over every array): identifies the model."""
        h = hashlib.sha256()
        for k, v in self._arrays().items():
            v = np.ascontiguousarray(v)
            h.update(f"{k}:{v.dtype.str}:{v.shape}".encode())
            h.update(v.tobytes())
        return h.hexdigest()[:16]

    def expression_vertices(self, identity: np.ndarray, expression: np.ndarray) -> np.ndarray:
        """Model-space vertices ``identity + basis @ expression``.

        Args:
            identity: (V, 3) mm.
            expression: (..., K) coefficients.

        Returns:
            (..., V, 3) float32 mm.
        """
        offs = np.asarray(expression, np.float32) @ self.basis_flat.T
        return identity + offs.reshape(*offs.shape[:-1], self.n_vertices, 3)

    def to_bytes(self) -> bytes:
        """The ``.npz`` file content (for embedding the model in checkpoints)."""
        meta = {
            "name": self.name,
            "units": "mm",
            "format_version": FORMAT_VERSION,
            "hash": self.hash,
            "info": self.info,
        }
        buf = io.BytesIO()
        np.savez(buf, meta=np.array(json.dumps(meta)), **self._arrays())
        return buf.getvalue()

    def save(self, path: str | Path) -> Path:
        """Write the ``.npz`` atomically (temp file, then rename); returns the path."""
        from nvp.config import atomic_write_bytes

        return atomic_write_bytes(path, self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "<embedded face model>") -> FaceModel:
        """A face model from ``.npz`` file content (see :meth:`to_bytes`)."""
        return cls._read(io.BytesIO(data), name)

    @classmethod
    def load(cls, path: str | Path) -> FaceModel:
        """Read a face model ``.npz``; a clear error names the file when it is missing or bad."""
        path = Path(path)
        if not path.is_file():
            raise InputError("face model file not found", path=path)
        return cls._read(path, str(path))

    @classmethod
    def _read(cls, source, path: str) -> FaceModel:
        try:
            with np.load(source, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except Exception as exc:
            raise InputError(f"not a readable face model .npz ({exc})", path=path) from exc
        required = {"mean", "basis", "triangles", "triangle_labels", "uv", "mouth_weight"}
        missing = required - set(data)
        if missing:
            raise InputError(f"face model lacks arrays {sorted(missing)}", path=path)
        meta = json.loads(str(data.pop("meta"))) if "meta" in data else {}
        indices = {k[6:]: data.pop(k) for k in list(data) if k.startswith("index_")}
        model = cls(
            mean=data["mean"],
            basis=data["basis"],
            triangles=data["triangles"],
            triangle_labels=data["triangle_labels"],
            uv=data["uv"],
            mouth_weight=data["mouth_weight"],
            indices=indices or topology.index_sets(),
            stddev=data.get("stddev"),
            explained_variance=data.get("explained_variance"),
            name=meta.get("name", Path(path).stem),
            info=meta.get("info", {}),
        )
        if meta.get("hash") and meta["hash"] != model.hash:
            raise InputError(
                f"face model content does not match its recorded hash "
                f"({meta['hash']} vs {model.hash}): the file was modified or is corrupt",
                path=path,
            )
        return model


# --------------------------------------------------------------------------- geometry helpers


def iod(shape: np.ndarray) -> np.ndarray:
    """Inter-ocular distance (outer eye corners 33-263) of (..., V, 3) shapes: (...,)."""
    a, b = topology.EYE_CORNERS
    return np.linalg.norm(shape[..., a, :] - shape[..., b, :], axis=-1)


def mouth_opening(shape: np.ndarray) -> np.ndarray:
    """Mean upper-to-lower inner-lip distance of (..., V, 3) shapes, in their units: (...,)."""
    pairs = np.asarray(topology.MOUTH_OPENING_PAIRS)
    d = shape[..., pairs[:, 0], :] - shape[..., pairs[:, 1], :]
    return np.linalg.norm(d, axis=-1).mean(-1)


def frontalize(shape: np.ndarray) -> np.ndarray:
    """Rotate and centre a (V, 3) shape so that the face looks down the z axis.

    The depth axis is the direction of least variance of the shape (the face is
    a shallow surface); x points from landmark 33 to 263 (image right for a
    frontal face), y = z × x (down), z away from the camera (the nose tip has the
    smallest z). Returns the (V, 3) float64 frontal shape centred on its mean.
    """
    p = np.asarray(shape, np.float64)
    p = p - p.mean(0)
    _, _, vt = np.linalg.svd(p, full_matrices=False)
    z = vt[2]
    nose_tip = 4
    if p[nose_tip] @ z > 0:  # the nose must point towards the camera (negative z)
        z = -z
    a, b = topology.EYE_CORNERS
    x = p[b] - p[a]
    x = x - (x @ z) * z
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    p = p @ np.stack([x, y, z]).T
    # The least-variance axis is only roughly the viewing direction: search the pitch / yaw
    # that unfolds the UV projection best (the measured mean is pitched ~11 degrees).
    from scipy.spatial.transform import Rotation

    tris = _consistent_orientation(topology.face_mesh()[0])
    best = (np.inf, 0.0, 0.0)
    for pitch in np.arange(-30.0, 30.1, 2.5):
        for yaw in np.arange(-15.0, 15.1, 2.5):
            q = p @ Rotation.from_euler("xy", [pitch, yaw], degrees=True).as_matrix().T
            folded = _folded_area(tris, uv_from_frontal(q))
            cost = (folded, abs(pitch) + abs(yaw))
            if cost < (*best[:1], abs(best[1]) + abs(best[2])):
                best = (folded, pitch, yaw)
    return p @ Rotation.from_euler("xy", best[1:], degrees=True).as_matrix().T


def uv_from_frontal(
    frontal: np.ndarray, margin: float = 0.02, axis_depth: float = 80.0
) -> np.ndarray:
    """Texture coordinates of a frontal (V, 3) mm shape: (V, 2) in [0, 1].

    A cylindrical projection around a vertical axis ``axis_depth`` mm behind
    the face centre (u = arc length, v = height): it folds the sides of the face
    less than an orthographic projection (measured on the template: 0.07 % vs
    0.23 % of the UV area folded). The aspect ratio is kept; the face is
    centred with ``margin`` of the texture left free on the longer side.
    """
    p = np.asarray(frontal, np.float64)
    theta = np.arctan2(p[:, 0], axis_depth + p[:, 2].mean() - p[:, 2])
    xy = np.stack([theta * axis_depth, p[:, 1]], axis=1)
    lo, hi = xy.min(0), xy.max(0)
    scale = (1 - 2 * margin) / (hi - lo).max()
    uv = (xy - (lo + hi) / 2) * scale + 0.5
    return uv.astype(np.float32)


def orient_triangles(triangles: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Reorder vertices so every triangle is counter-clockwise in UV (u right, v down)."""
    t = np.asarray(triangles, np.int32).copy()
    a, b, c = uv[t[:, 0]], uv[t[:, 1]], uv[t[:, 2]]
    cross = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    flip = cross < 0
    t[flip] = t[flip][:, [0, 2, 1]]
    return t


def uv_fold_fraction(triangles: np.ndarray, uv: np.ndarray) -> float:
    """Fraction of the UV area covered by folded triangles.

    The mesh is a disk, so a consistent orientation of its triangles exists;
    triangles whose UV winding disagrees with the majority are folded over.
    """
    return _folded_area(_consistent_orientation(np.asarray(triangles)), uv)


def _folded_area(t: np.ndarray, uv: np.ndarray) -> float:
    """Folded UV area fraction of consistently oriented triangles ``t``."""
    a, b, c = uv[t[:, 0]], uv[t[:, 1]], uv[t[:, 2]]
    cross = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    pos = cross > 0
    bad = pos != (pos.sum() * 2 > len(pos))
    return float(np.abs(cross[bad]).sum() / np.abs(cross).sum())


def _consistent_orientation(t: np.ndarray) -> np.ndarray:
    """Orient the triangles of a connected manifold mesh consistently (BFS over shared edges)."""
    t = t.copy()
    by_edge: dict[tuple[int, int], list[int]] = {}
    for f, (a, b, c) in enumerate(t.tolist()):
        for e in ((a, b), (b, c), (c, a)):
            by_edge.setdefault(tuple(sorted(e)), []).append(f)
    done = np.zeros(len(t), bool)
    for start in range(len(t)):
        if done[start]:
            continue
        done[start] = True
        queue = [start]
        while queue:
            f = queue.pop()
            a, b, c = t[f].tolist()
            for u, v in ((a, b), (b, c), (c, a)):
                for g in by_edge[tuple(sorted((u, v)))]:
                    if g == f or done[g]:
                        continue
                    ga, gb, gc = t[g].tolist()
                    directed = {(ga, gb), (gb, gc), (gc, ga)}
                    if (u, v) in directed:  # same direction: g must be flipped
                        t[g] = t[g][[0, 2, 1]]
                    done[g] = True
                    queue.append(g)
    return t


def mouth_weights(shape: np.ndarray, sigma_mm: float = 10.0) -> np.ndarray:
    """Per-vertex mouth weight (V,) in [0, 1]: 1 on the lip landmarks, a Gaussian of the
    distance to the nearest lip landmark elsewhere (``sigma_mm`` in model mm)."""
    lips = topology.lip_vertices()
    d = np.linalg.norm(shape[:, None, :] - shape[None, lips, :], axis=-1).min(1)
    return np.exp(-0.5 * (d / sigma_mm) ** 2).astype(np.float32)


def normalize_shape(shape: np.ndarray) -> np.ndarray:
    """Centre and scale a (V, 3) shape to :data:`EYE_CORNER_DISTANCE_MM` mm between 33 and 263."""
    p = np.asarray(shape, np.float64)
    p = p - p.mean(0)
    return (p * (EYE_CORNER_DISTANCE_MM / iod(p))).astype(np.float32)


def model_from_mean(
    mean: np.ndarray,
    basis: np.ndarray | None = None,
    *,
    name: str = "template",
    stddev: np.ndarray | None = None,
    explained_variance: np.ndarray | None = None,
    info: dict | None = None,
    frontal: bool = False,
) -> FaceModel:
    """Assemble a :class:`FaceModel` around a mean shape: frontalize, scale to mm, derive the
    UVs (frontal projection), orient the mesh, compute mouth weights.

    Args:
        mean: (V, 3) neutral shape in any similarity frame (image pixels are fine).
        basis: (V, 3, K) expression basis in the frame of the returned mean (pass a frontal,
            normalised mean with ``frontal=True``), or None for K = 0.
        frontal: ``mean`` is already frontal and in mm (skip frontalization and scaling).
    """
    frontal_mean = np.asarray(mean, np.float32) if frontal else normalize_shape(frontalize(mean))
    uv = uv_from_frontal(frontal_mean)
    tris, labels = topology.face_mesh()
    tris = orient_triangles(tris, uv)
    return FaceModel(
        mean=frontal_mean,
        basis=basis,
        triangles=tris,
        triangle_labels=labels,
        uv=uv,
        mouth_weight=mouth_weights(frontal_mean),
        stddev=stddev,
        explained_variance=explained_variance,
        name=name,
        info=info or {},
    )


@lru_cache(maxsize=1)
def template_face_model() -> FaceModel:
    """The built-in face model (K = 0): MediaPipe's landmarks of a public-domain portrait.

    The mean shape comes from running MediaPipe Face Mesh on the photograph of
    Grace Hopper shipped with matplotlib (US Navy, public domain), frontalized
    and scaled to mm. It is the reference for the rigid fit until a corpus
    model is built with ``nvp build-face-model``; it has no expression basis.
    """
    import matplotlib.cbook

    from nvp.tracking.landmarks import detect_image

    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    from PIL import Image

    image = np.asarray(Image.open(path).convert("RGB"))
    lm = detect_image(image)
    if lm is None:  # pragma: no cover - would mean a broken mediapipe install
        raise RuntimeError("MediaPipe found no face in the built-in template photograph")
    return model_from_mean(lm, name="template", info={"source": "grace_hopper.jpg"})
