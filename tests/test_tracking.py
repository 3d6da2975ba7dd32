"""Face model, mesh topology, rigid fit, identity / expression, gap filling, basis learning."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from nvp.config import FaceModelConfig
from nvp.errors import InputError
from nvp.tracking import topology
from nvp.tracking.basis import learn_basis
from nvp.tracking.face_model import (
    EYE_CORNER_DISTANCE_MM,
    FaceModel,
    iod,
    model_from_mean,
    mouth_opening,
    template_face_model,
    uv_fold_fraction,
)
from nvp.tracking.fit import (
    align,
    apply_pose,
    estimate_identity,
    fit_sequence,
    params_to_pose,
    pose_to_params,
    project_expression,
    similarity_fit,
    smooth_pose,
)
from nvp.tracking.landmarks import fill_gaps


@pytest.fixture(scope="module")
def template() -> FaceModel:
    return template_face_model()


class TestTopology:
    def test_closed_disk(self):
        tris, _labels = topology.face_mesh()
        assert tris.shape == (898, 3)
        edges = Counter()
        for a, b, c in tris.tolist():
            for e in ((a, b), (b, c), (c, a)):
                edges[tuple(sorted(e))] += 1
        assert max(edges.values()) == 2  # no non-manifold edge
        n_boundary = sum(v == 1 for v in edges.values())
        assert n_boundary == 36  # only the outer face contour is open
        chi = len(set(tris.ravel().tolist())) - len(edges) + len(tris)
        assert chi == 1  # a disk: mouth and eyes are closed
        assert len(set(tris.ravel().tolist())) == topology.N_VERTICES

    def test_contours_follow_mediapipe_edges(self):
        from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

        edges = {tuple(sorted(e)) for e in FACEMESH_TESSELATION}
        for chain in (
            topology.MOUTH_UPPER,
            topology.MOUTH_LOWER,
            topology.LEFT_EYE_UPPER,
            topology.RIGHT_EYE_LOWER,
        ):
            for a, b in itertools.pairwise(chain):
                assert tuple(sorted((a, b))) in edges

    def test_written_out_index_sets_are_mediapipes(self):
        from mediapipe.python.solutions import face_mesh_connections as fmc

        for edges, ours in (
            (fmc.FACEMESH_LIPS, topology.LIP_VERTICES),
            (fmc.FACEMESH_LEFT_EYE, topology.LEFT_EYE_VERTICES),
            (fmc.FACEMESH_RIGHT_EYE, topology.RIGHT_EYE_VERTICES),
        ):
            assert tuple(sorted({v for e in edges for v in e})) == ours

    def test_mouth_labels_cover_lips_not_cheeks(self):
        tris, labels = topology.face_mesh()
        mouth = tris[labels == topology.LABEL_MOUTH]
        assert set(topology.MOUTH_UPPER) <= set(mouth.ravel().tolist())
        assert 1 not in mouth  # nose tip region is not mouth
        assert 100 < len(mouth) < 200


class TestFaceModel:
    def test_template(self, template):
        assert template.n_components == 0
        assert iod(template.mean) == pytest.approx(EYE_CORNER_DISTANCE_MM, rel=1e-4)
        assert template.uv.min() >= 0 and template.uv.max() <= 1
        # UVs barely fold (measured 0.02 % of the UV area on the template).
        assert uv_fold_fraction(template.triangles, template.uv) < 1e-3
        lips = topology.lip_vertices()
        assert np.all(template.mouth_weight[lips] == 1)
        assert template.mouth_weight[10] < 0.05  # forehead

    def test_frontal(self, template):
        # Frontal: the eye-corner line is horizontal and the nose tip points to the camera.
        a, b = topology.EYE_CORNERS
        d = template.mean[b] - template.mean[a]
        assert abs(d[1]) < 0.05 * d[0] and abs(d[2]) < 0.2 * d[0]
        assert template.mean[4, 2] < template.mean[:, 2].mean()

    def test_save_load_roundtrip(self, template, tmp_path):
        m = model_from_mean(
            template.mean, np.eye(1404, 3).reshape(468, 3, 3), frontal=True, name="t"
        )
        p = m.save(tmp_path / "m.npz")
        m2 = FaceModel.load(p)
        assert m2.hash == m.hash and m2.n_components == 3
        np.testing.assert_array_equal(m2.basis, m.basis)
        np.testing.assert_array_equal(m2.triangles, m.triangles)
        assert set(m2.indices) == set(m.indices)

    def test_tampered_file_is_rejected(self, template, tmp_path):
        p = template.save(tmp_path / "m.npz")
        with np.load(p) as z:
            d = dict(z)
        d["mean"] = d["mean"] + 1
        np.savez(p, **d)
        with pytest.raises(InputError, match="hash"):
            FaceModel.load(p)

    def test_missing_file(self, tmp_path):
        with pytest.raises(InputError, match="not found"):
            FaceModel.load(tmp_path / "nope.npz")


def _random_pose(n, rng):
    s = rng.uniform(1.5, 3.0, n)
    R = Rotation.from_euler("xyz", rng.uniform(-20, 20, (n, 3)), degrees=True).as_matrix()
    t = rng.uniform(50, 150, (n, 3))
    return s, R, t


class TestRigidFit:
    def test_recovers_similarity(self, template):
        rng = np.random.default_rng(0)
        s, R, t = _random_pose(5, rng)
        dst = s[:, None, None] * np.einsum("nij,vj->nvi", R, template.mean) + t[:, None]
        s2, R2, t2 = similarity_fit(template.mean, dst)
        np.testing.assert_allclose(s2, s, rtol=1e-6)
        np.testing.assert_allclose(R2, R, atol=1e-6)
        np.testing.assert_allclose(t2, t, atol=1e-4)

    def test_params_roundtrip_and_inverse(self, template):
        rng = np.random.default_rng(1)
        pose = pose_to_params(*_random_pose(4, rng))
        _s, R, _t = params_to_pose(pose)
        assert np.allclose(np.linalg.det(R), 1)
        shapes = np.repeat(template.mean[None], 4, 0)
        back = align(apply_pose(shapes, pose), pose)
        np.testing.assert_allclose(back, shapes, atol=1e-3)

    def test_smoothing_reduces_jitter_keeps_constant(self):
        rng = np.random.default_rng(2)
        base = np.array([2.0, 0.1, -0.05, 0.02, 100, 80, 5], np.float32)
        noisy = base + rng.normal(0, 0.01, (100, 7)).astype(np.float32)
        sm = smooth_pose(noisy, 2.0)
        assert np.abs(np.diff(sm, axis=0)).mean() < 0.5 * np.abs(np.diff(noisy, axis=0)).mean()
        const = np.tile(base, (10, 1))
        np.testing.assert_allclose(smooth_pose(const, 3.0), const, rtol=1e-5)


class TestExpression:
    def _model(self, template, k=4, seed=0):
        rng = np.random.default_rng(seed)
        q, _ = np.linalg.qr(rng.normal(size=(1404, k)))
        return model_from_mean(template.mean, q.reshape(468, 3, k), frontal=True, name="x")

    def test_fit_sequence_recovers_coefficients(self, template):
        model = self._model(template)
        rng = np.random.default_rng(3)
        n = 30
        e = rng.normal(0, 2.0, (n, 4)).astype(np.float32)
        e[:8] = 0  # closed-mouth frames at zero expression define the identity
        # identity and expression leave the pose points alone, so the rigid fit is exact
        pts = [*list(topology.EYE_CORNERS), 133, 362, 168, 6, 197, 195, 5]
        identity = model.mean + rng.normal(0, 0.5, model.mean.shape).astype(np.float32)
        identity[pts] = model.mean[pts]
        basis = model.basis.copy()
        basis[pts] = 0
        basis_flat, _ = np.linalg.qr(basis.reshape(1404, 4))
        model.basis = basis_flat.reshape(468, 3, 4).astype(np.float32)
        shapes = model.expression_vertices(identity, e)
        pose = pose_to_params(*_random_pose(n, rng))
        lm = apply_pose(shapes, pose)
        fit = fit_sequence(
            lm, np.zeros(n, np.uint8), model, points=pts, pose_sigma=0, closed_fraction=0.25
        )
        np.testing.assert_allclose(fit.pose, pose, atol=1e-3)
        # The estimated identity is the mean of some frames' shapes, so the coefficients are
        # recovered up to one constant offset (that identity's own coefficients).
        offset = fit.expression - e
        np.testing.assert_allclose(offset, np.broadcast_to(offset[0], offset.shape), atol=1e-3)
        np.testing.assert_allclose(fit.vertices(model), lm, atol=1e-2)

    def test_identity_uses_closed_mouth(self, template):
        closed = np.repeat(template.mean[None], 5, 0)
        opened = closed.copy()
        opened[:, list(topology.MOUTH_LOWER[1:-1])] += [0, 8.0, 0]
        both = np.concatenate([closed, opened, opened, opened])
        ident = estimate_identity(both, 0.25)
        np.testing.assert_allclose(ident, template.mean, atol=1e-5)
        plain = both.mean(0)
        assert mouth_opening(plain) > mouth_opening(ident) + 4

    def test_projection_k0(self, template):
        e = project_expression(np.repeat(template.mean[None], 3, 0), template.mean, template)
        assert e.shape == (3, 0)


class TestFillGaps:
    def test_interpolates_short_and_flags_long(self):
        lm = [
            np.full((2, 3), float(i)) if i not in (3, 4, 8, 9, 10, 11) else None for i in range(14)
        ]
        lm[0] = None
        out, flags = fill_gaps(lm, max_gap=2)
        assert flags.tolist() == [2, 0, 0, 1, 1, 0, 0, 0, 2, 2, 2, 2, 0, 0]
        np.testing.assert_allclose(out[3], 3.0)  # linear between 2 and 5
        np.testing.assert_allclose(out[4], 4.0)
        np.testing.assert_allclose(out[0], 1.0)  # held at the first detection
        assert {float(out[i, 0, 0]) for i in (8, 9, 10, 11)} <= {7.0, 12.0}

    def test_no_face(self):
        with pytest.raises(ValueError, match="no frame"):
            fill_gaps([None, None], 3)


class _FakeStore:
    def __init__(self, name, lm, flags):
        self.name, self._d = name, {"landmarks": lm, "face_flag": flags}

    def __getitem__(self, k):
        return self._d[k]


class TestLearnBasis:
    def test_recovers_subspace_and_limits_k(self, template):
        rng = np.random.default_rng(5)
        k_true = 3
        q, _ = np.linalg.qr(rng.normal(size=(1404, k_true)))
        pts = [33, 133, 362, 263, 168, 6, 197, 195, 5]
        q = q.reshape(468, 3, k_true)
        q[pts] = 0
        q = np.linalg.qr(q.reshape(1404, k_true))[0]
        stores = []
        for i in range(3):
            n = 60
            e = rng.normal(0, 3.0, (n, k_true)) * [4, 2, 1]
            e[:12] = 0
            shapes = template.mean + (e @ q.T).reshape(n, 468, 3)
            shapes[:12, list(topology.MOUTH_LOWER[1:-1]), 1] -= 0.0  # closed frames unchanged
            pose = pose_to_params(*_random_pose(n, rng))
            lm = apply_pose(shapes.astype(np.float32), pose)
            stores.append(_FakeStore(f"s{i}", lm, np.zeros(n, np.uint8)))
        cfg = FaceModelConfig(n_components=76)
        cfg.tracking.pose_smooth_sigma = 0.0
        model, report = learn_basis(stores, template, cfg)
        assert model.n_components == k_true  # noise-free data supports exactly 3 components
        assert report.cumulative[3] == pytest.approx(1.0, abs=1e-4)
        # the learned basis spans the true one (up to the frontal rotation of the mean)
        b = model.basis_flat
        assert np.allclose(b.T @ b, np.eye(k_true), atol=1e-4)
        assert "move a vertex" in report.why or "numerically" in report.why

    def test_needs_stores(self, template):
        with pytest.raises(InputError):
            learn_basis([], template, FaceModelConfig())
