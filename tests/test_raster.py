"""Tests of nvp.raster: rasterization against a naive float64 reference, UV maps, textures."""

from __future__ import annotations

import importlib
import importlib.util

import numpy as np
import pytest
import torch

from nvp.errors import MissingDependencyError
from nvp.raster import (
    BACKENDS,
    Fragments,
    face_labels,
    fill_texture_holes,
    interpolate,
    rasterize,
    render_uv_mask,
    sample_texture,
    unwrap_texture,
)

HAS_PYTORCH3D = importlib.util.find_spec("pytorch3d") is not None


# --------------------------------------------------------------------------------------------
# Naive reference: loop over triangles, every pixel centre, float64, z-buffer.


def _seg_dist(px: np.ndarray, py: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = b - a
    length2 = float(d @ d)
    if length2 == 0.0:
        return np.hypot(px - a[0], py - a[1])
    t = np.clip(((px - a[0]) * d[0] + (py - a[1]) * d[1]) / length2, 0.0, 1.0)
    return np.hypot(px - (a[0] + t * d[0]), py - (a[1] + t * d[1]))


def naive_rasterize(verts: np.ndarray, faces: np.ndarray, h: int, w: int, tol: float = 1e-5):
    """Reference rasterizer for one frame.

    Returns face_idx (H, W), bary (H, W, 3) and ``ambiguous`` (H, W): pixel centres within
    ``tol`` of any triangle edge, or where the two nearest covering depths are within ``tol``;
    there the float32 result may legitimately differ.
    """
    v = verts.astype(np.float64)
    jj, ii = np.meshgrid(np.arange(w), np.arange(h))
    px, py = jj + 0.5, ii + 0.5
    face_idx = np.full((h, w), -1, dtype=np.int64)
    bary = np.zeros((h, w, 3))
    zbest = np.full((h, w), np.inf)
    zsecond = np.full((h, w), np.inf)
    ambiguous = np.zeros((h, w), dtype=bool)
    for f, (a, b, c) in enumerate(faces):
        p0, p1, p2 = v[a], v[b], v[c]
        for s, e in ((p0, p1), (p1, p2), (p2, p0)):
            ambiguous |= _seg_dist(px, py, s[:2], e[:2]) < tol
        area2 = (p1[0] - p0[0]) * (p2[1] - p0[1]) - (p1[1] - p0[1]) * (p2[0] - p0[0])
        if area2 == 0.0:
            continue

        def edge(s, e):
            return (e[0] - s[0]) * (py - s[1]) - (e[1] - s[1]) * (px - s[0])

        w0, w1, w2 = edge(p1, p2) / area2, edge(p2, p0) / area2, edge(p0, p1) / area2
        inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
        z = w0 * p0[2] + w1 * p1[2] + w2 * p2[2]
        better = inside & (z < zbest)
        zsecond = np.where(inside & ~better, np.minimum(zsecond, z), zsecond)
        zsecond = np.where(better, zbest, zsecond)
        zbest = np.where(better, z, zbest)
        face_idx = np.where(better, f, face_idx)
        bary = np.where(better[..., None], np.stack([w0, w1, w2], -1), bary)
    both = np.isfinite(zsecond)
    ambiguous[both] |= np.abs(zsecond[both] - zbest[both]) < tol
    return face_idx, bary, ambiguous


def random_mesh(seed: int, h: int = 24, w: int = 32, num_tris: int = 24):
    """Random triangle soup: overlapping, partly outside, degenerate, both windings."""
    g = np.random.default_rng(seed)
    verts, faces = [], []
    for _ in range(num_tris):
        centre = g.uniform([-4, -4], [w + 4, h + 4])
        corners = centre + g.uniform(-10, 10, size=(3, 2))
        depth = g.uniform(-5, 5, size=(3, 1))
        base = len(verts)
        verts.extend(np.concatenate([corners, depth], 1))
        faces.append([base, base + 1, base + 2])
    # Degenerate: collinear through pixel centres (exact in float32), and a repeated vertex.
    base = len(verts)
    verts.extend([[1.5, 1.5, -9.0], [5.5, 5.5, -9.0], [9.5, 9.5, -9.0]])
    faces.append([base, base + 1, base + 2])
    faces.append([base, base, base + 1])
    # A shared vertex used by two triangles, a face referencing vertices in reverse order.
    faces.append([2, 1, 0])
    verts_t = torch.tensor(np.asarray(verts), dtype=torch.float32)
    return verts_t, torch.tensor(faces, dtype=torch.int64)


def grid_mesh(
    nx: int, ny: int, x0: float, y0: float, x1: float, y1: float, jitter: float = 0.0, seed: int = 0
):
    """Regular grid of (nx, ny) vertices over [x0, x1] x [y0, y1], two triangles per cell."""
    g = torch.Generator().manual_seed(seed)
    xs = torch.linspace(x0, x1, nx)
    ys = torch.linspace(y0, y1, ny)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    pts = torch.stack([xx, yy], -1).reshape(-1, 2)
    interior = ((xx > x0) & (xx < x1) & (yy > y0) & (yy < y1)).reshape(-1)
    step = min((x1 - x0) / (nx - 1), (y1 - y0) / (ny - 1))
    noise = (torch.rand(pts.shape, generator=g) - 0.5) * 2 * jitter * step
    pts = pts + noise * interior[:, None]
    z = ((pts[:, 0] - (x0 + x1) / 2) ** 2 + (pts[:, 1] - (y0 + y1) / 2) ** 2) * 0.01
    verts = torch.cat([pts, z[:, None]], 1)
    faces = []
    for r in range(ny - 1):
        for c in range(nx - 1):
            a, b = r * nx + c, r * nx + c + 1
            d, e = (r + 1) * nx + c, (r + 1) * nx + c + 1
            if (r + c) % 2:
                faces += [[a, b, e], [a, e, d]]
            else:
                faces += [[a, b, d], [b, e, d]]  # mixed windings and diagonals
    return verts, torch.tensor(faces, dtype=torch.int64)


# --------------------------------------------------------------------------------------------


class TestRasterize:
    def test_smoke(self):
        verts = torch.tensor([[[2.0, 2.0, 0.0], [10.0, 2.0, 0.0], [2.0, 8.0, 0.0]]])
        faces = torch.tensor([[0, 1, 2]])
        frags = rasterize(verts, faces, (12, 16))
        assert isinstance(frags, Fragments)
        assert frags.face_idx.shape == (1, 12, 16)
        assert frags.face_idx.dtype == torch.int64
        assert frags.bary.shape == (1, 12, 16, 3)
        assert frags.bary.dtype == torch.float32
        assert frags.size == (12, 16)
        assert frags.mask.any()

    @pytest.mark.parametrize("seed", range(8))
    def test_matches_naive_reference(self, seed):
        h, w = 24, 32
        verts, faces = random_mesh(seed, h, w, num_tris=10 + 3 * seed)
        frags = rasterize(verts[None], faces, (h, w))
        ref_idx, ref_bary, ambiguous = naive_rasterize(verts.numpy(), faces.numpy(), h, w)
        got_idx = frags.face_idx[0].numpy()
        got_bary = frags.bary[0].numpy()
        ok = ~ambiguous
        assert ok.mean() > 0.8  # the comparison must not be vacuous
        np.testing.assert_array_equal(got_idx[ok], ref_idx[ok])
        np.testing.assert_allclose(got_bary[ok], ref_bary[ok], atol=1e-4)
        # On ambiguous pixels the winner must still be a triangle that (almost) covers it.
        amb_cov = got_idx >= 0
        assert (got_bary[amb_cov] >= 0).all()
        np.testing.assert_allclose(got_bary[amb_cov].sum(-1), 1.0, atol=1e-4)

    def test_degenerate_triangles_cover_nothing(self):
        # Collinear vertices passing exactly through pixel centres, and a repeated vertex.
        verts = torch.tensor([[[1.5, 1.5, 0.0], [5.5, 5.5, 0.0], [9.5, 9.5, 0.0], [3.5, 0.5, 0.0]]])
        faces = torch.tensor([[0, 1, 2], [2, 1, 0], [0, 0, 3], [3, 3, 3]])
        frags = rasterize(verts, faces, (12, 12))
        assert (frags.face_idx == -1).all()
        assert (frags.bary == 0).all()

    def test_winding_does_not_matter(self):
        verts, faces = random_mesh(3)
        a = rasterize(verts[None], faces, (24, 32))
        b = rasterize(verts[None], faces[:, [0, 2, 1]], (24, 32))
        assert torch.equal(a.face_idx, b.face_idx)
        torch.testing.assert_close(a.bary, b.bary[..., [0, 2, 1]], atol=1e-6, rtol=0)

    def test_z_buffer_smaller_depth_wins(self):
        tri = [[0.0, 0.0], [20.0, 0.0], [0.0, 20.0]]
        far = [[*p, 5.0] for p in tri]
        near = [[*p, -1.0] for p in tri]
        faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
        frags = rasterize(torch.tensor([far + near]), faces, (8, 8))
        assert (frags.face_idx[0, :4, :4] == 1).all()
        # Exact tie: the lowest face index wins.
        frags = rasterize(torch.tensor([far + far]), faces, (8, 8))
        assert (frags.face_idx[0, :4, :4] == 0).all()

    def test_interpenetrating_triangles(self):
        # Two triangles crossing along x = 8: left of it face 0 is closer, right of it face 1.
        verts = torch.tensor(
            [[[0, 0, -8], [16, 0, 8], [0, 16, -8], [0, 0, 8], [16, 0, -8], [16, 16, -8]]],
            dtype=torch.float32,
        )
        faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
        frags = rasterize(verts, faces, (16, 16))
        idx = frags.face_idx[0]
        assert idx[2, 3] == 0 and idx[2, 12] == 1

    def test_pixel_centre_convention(self):
        # A triangle whose vertices sit exactly on pixel centres covers them (edges inclusive).
        verts = torch.tensor([[[2.5, 3.5, 0.0], [6.5, 3.5, 0.0], [2.5, 7.5, 0.0]]])
        frags = rasterize(verts, torch.tensor([[0, 1, 2]]), (10, 10))
        idx = frags.face_idx[0]
        assert idx[3, 2] == 0 and idx[3, 6] == 0 and idx[7, 2] == 0 and idx[5, 4] == 0
        assert idx[3, 7] == -1 and idx[2, 2] == -1 and idx[3, 1] == -1 and idx[6, 4] == -1
        assert int(frags.mask.sum()) == 15  # 5 + 4 + 3 + 2 + 1
        torch.testing.assert_close(frags.bary[0, 3, 2], torch.tensor([1.0, 0.0, 0.0]))

    def test_watertight_shared_edges(self):
        # Jittered grid with diagonals through pixel centres: no hole inside the mesh.
        verts, faces = grid_mesh(9, 7, 3.5, 2.5, 27.5, 20.5, jitter=0.3, seed=1)
        frags = rasterize(verts[None], faces, (24, 32))
        inner = frags.face_idx[0, 3:20, 4:27]
        assert (inner >= 0).all()
        # Quad split along a diagonal through many pixel centres.
        quad = torch.tensor(
            [[[0.5, 0.5, 0.0], [20.5, 0.5, 0.0], [20.5, 20.5, 0.0], [0.5, 20.5, 0.0]]]
        )
        for diag in ([[0, 1, 2], [0, 2, 3]], [[0, 1, 2], [2, 3, 0]], [[1, 0, 2], [0, 3, 2]]):
            frags = rasterize(quad, torch.tensor(diag), (22, 22))
            assert (frags.face_idx[0, :21, :21] >= 0).all()
            assert (frags.face_idx[0, 21, :] == -1).all()

    def test_watertight_random_float_grid(self):
        g = torch.Generator().manual_seed(0)
        for k in range(4):
            verts, faces = grid_mesh(12, 10, 10.0, 8.0, 110.0, 90.0, jitter=0.45, seed=k)
            verts[:, :2] += torch.rand(2, generator=g)
            frags = rasterize(verts[None], faces, (100, 120))
            inner = frags.face_idx[0, 10:88, 12:108]
            assert (inner >= 0).all()

    def test_batched_equals_per_frame(self):
        base, faces = grid_mesh(10, 8, 2.0, 2.0, 30.0, 22.0, jitter=0.4, seed=0)
        g = torch.Generator().manual_seed(1)
        frames = [base + torch.randn(base.shape, generator=g) * 0.7 for _ in range(3)]
        batch = torch.stack(frames)
        frags = rasterize(batch, faces, (24, 32))
        for k, v in enumerate(frames):
            single = rasterize(v[None], faces, (24, 32))
            assert torch.equal(frags.face_idx[k], single.face_idx[0])
            assert torch.equal(frags.bary[k], single.bary[0])

    def test_outside_image_and_empty(self):
        verts = torch.tensor([[[-50.0, -50.0, 0.0], [-10.0, -50.0, 0.0], [-50.0, -10.0, 0.0]]])
        frags = rasterize(verts, torch.tensor([[0, 1, 2]]), (8, 8))
        assert (frags.face_idx == -1).all()
        frags = rasterize(verts, torch.zeros(0, 3, dtype=torch.int64), (8, 8))
        assert (frags.face_idx == -1).all()

    def test_huge_triangle_is_chunked(self, monkeypatch):
        # The package re-exports the function rasterize(), which shadows the module name.
        rz = importlib.import_module("nvp.raster.rasterize")
        verts, faces = grid_mesh(6, 5, -3.0, -2.0, 70.0, 50.0, jitter=0.3, seed=2)
        ref = rasterize(verts[None], faces, (48, 64))
        monkeypatch.setattr(rz, "_MAX_CANDIDATES", 100)
        got = rasterize(verts[None], faces, (48, 64))
        assert torch.equal(ref.face_idx, got.face_idx)
        assert torch.equal(ref.bary, got.bary)

    def test_bary_differentiable(self):
        base, faces = grid_mesh(5, 5, 2.0, 2.0, 14.0, 14.0, jitter=0.3)
        base = base[None]
        g = torch.Generator().manual_seed(0)
        weights = torch.randn(1, 16, 16, 3, generator=g)
        step = torch.randn(base.shape, generator=g) * 1e-2
        # Finite differences along a random direction, on pixels that keep their triangle.
        ref = rasterize(base, faces, (16, 16))
        plus = rasterize(base + step, faces, (16, 16))
        minus = rasterize(base - step, faces, (16, 16))
        same = (plus.face_idx == minus.face_idx) & (plus.face_idx == ref.face_idx) & ref.mask
        assert same.sum() > 100
        numeric = ((plus.bary - minus.bary) * weights)[same].sum() / 2
        verts = base.clone().requires_grad_(True)
        frags = rasterize(verts, faces, (16, 16))
        (frags.bary * weights)[same].sum().backward()
        assert torch.isfinite(verts.grad).all()
        torch.testing.assert_close((verts.grad * step).sum(), numeric, atol=1e-3, rtol=1e-2)
        # Gradients also flow through interpolate to the attributes.
        uv = (base[0, :, :2] / 16.0).requires_grad_(True)
        detached = Fragments(frags.face_idx, frags.bary.detach())
        interpolate(detached, faces, uv).sum().backward()
        assert uv.grad is not None and uv.grad.abs().sum() > 0

    def test_float64_and_int32_inputs(self):
        verts, faces = grid_mesh(5, 5, 2.0, 2.0, 14.0, 14.0)
        a = rasterize(verts[None], faces, (16, 16))
        b = rasterize(verts[None].double(), faces.int(), [16, 16])
        assert torch.equal(a.face_idx, b.face_idx)

    @pytest.mark.parametrize(
        ("verts", "faces", "size", "match"),
        [
            (torch.zeros(4, 3), torch.tensor([[0, 1, 2]]), (8, 8), "batch dimension"),
            (torch.zeros(1, 4, 2), torch.tensor([[0, 1, 2]]), (8, 8), r"\(B, V, 3\)"),
            (
                torch.zeros(1, 4, 3, dtype=torch.int64),
                torch.tensor([[0, 1, 2]]),
                (8, 8),
                "floating-point",
            ),
            (torch.full((1, 4, 3), float("nan")), torch.tensor([[0, 1, 2]]), (8, 8), "NaN"),
            (torch.zeros(1, 4, 3), torch.tensor([0, 1, 2]), (8, 8), r"\(F, 3\)"),
            (torch.zeros(1, 4, 3), torch.tensor([[0.0, 1.0, 2.0]]), (8, 8), "integer"),
            (torch.zeros(1, 4, 3), torch.tensor([[0, 1, 4]]), (8, 8), "4 vertices"),
            (torch.zeros(1, 4, 3), torch.tensor([[0, -1, 2]]), (8, 8), "valid indices"),
            (torch.zeros(1, 4, 3), torch.tensor([[0, 1, 2]]), (8, 0), "positive"),
            (torch.zeros(1, 4, 3), torch.tensor([[0, 1, 2]]), 8, "pair of ints"),
        ],
    )
    def test_exceptions(self, verts, faces, size, match):
        with pytest.raises(ValueError, match=match):
            rasterize(verts, faces, size)

    def test_unknown_backend(self):
        with pytest.raises(ValueError, match="unknown rasterizer backend"):
            rasterize(torch.zeros(1, 3, 3), torch.tensor([[0, 1, 2]]), (4, 4), backend="gl")

    def test_backend_registry(self):
        assert set(BACKENDS) >= {"torch", "pytorch3d"}

    @pytest.mark.skipif(HAS_PYTORCH3D, reason="pytorch3d is installed")
    def test_pytorch3d_backend_missing(self):
        verts = torch.tensor([[[2.0, 2.0, 0.0], [10.0, 2.0, 0.0], [2.0, 8.0, 0.0]]])
        with pytest.raises(MissingDependencyError, match="pytorch3d"):
            rasterize(verts, torch.tensor([[0, 1, 2]]), (12, 16), backend="pytorch3d")

    @pytest.mark.skipif(not HAS_PYTORCH3D, reason="pytorch3d is not installed")
    def test_pytorch3d_backend_agrees(self):
        verts, faces = grid_mesh(9, 7, 3.3, 2.2, 27.7, 20.9, jitter=0.3, seed=1)
        a = rasterize(verts[None], faces, (24, 32))
        b = rasterize(verts[None], faces, (24, 32), backend="pytorch3d")
        agree = (a.face_idx == b.face_idx).float().mean()
        assert agree > 0.99
        both = (a.face_idx == b.face_idx) & a.mask
        torch.testing.assert_close(a.bary[both], b.bary[both], atol=1e-4, rtol=0)


class TestInterpolate:
    def test_affine_uv_exact_on_quad(self):
        quad = torch.tensor(
            [[[3.2, 2.7, 0.0], [28.9, 4.1, 0.0], [27.3, 21.6, 0.0], [2.1, 19.8, 0.0]]]
        )
        faces = torch.tensor([[0, 1, 2], [0, 2, 3]])

        def affine(xy: torch.Tensor) -> torch.Tensor:
            return torch.stack(
                [
                    0.02 * xy[..., 0] + 0.01 * xy[..., 1] + 0.1,
                    -0.015 * xy[..., 0] + 0.03 * xy[..., 1] + 0.3,
                ],
                -1,
            )

        uv = affine(quad[0, :, :2])
        frags = rasterize(quad, faces, (24, 32))
        uv_map = interpolate(frags, faces, uv)
        jj, ii = torch.meshgrid(torch.arange(32.0), torch.arange(24.0), indexing="xy")
        expected = affine(torch.stack([jj + 0.5, ii + 0.5], -1))
        m = frags.mask[0]
        assert m.sum() > 300
        torch.testing.assert_close(uv_map[0][m], expected[m], atol=1e-5, rtol=0)
        assert (uv_map[0][~m] == -1).all()

    def test_per_frame_attrs_and_background(self):
        verts, faces = grid_mesh(5, 5, 2.0, 2.0, 14.0, 14.0)
        batch = torch.stack([verts, verts + torch.tensor([1.0, 0.0, 0.0])])
        frags = rasterize(batch, faces, (16, 16))
        attrs = torch.stack([torch.ones(25, 4), 2 * torch.ones(25, 4)])
        out = interpolate(frags, faces, attrs, background=7.0)
        assert out.shape == (2, 16, 16, 4)
        torch.testing.assert_close(out[0][frags.mask[0]], torch.ones(int(frags.mask[0].sum()), 4))
        torch.testing.assert_close(
            out[1][frags.mask[1]], 2 * torch.ones(int(frags.mask[1].sum()), 4)
        )
        assert (out[~frags.mask] == 7.0).all()

    def test_float64_attrs(self):
        verts, faces = grid_mesh(5, 5, 2.0, 2.0, 14.0, 14.0)
        frags = rasterize(verts[None], faces, (16, 16))
        assert interpolate(frags, faces, torch.zeros(25, 1, dtype=torch.float64)).dtype == (
            torch.float64
        )

    def test_exceptions(self):
        verts, faces = grid_mesh(5, 5, 2.0, 2.0, 14.0, 14.0)
        frags = rasterize(verts[None], faces, (16, 16))
        with pytest.raises(ValueError, match="only 3 vertices"):
            interpolate(frags, faces, torch.zeros(3, 2))
        with pytest.raises(ValueError, match="floating-point"):
            interpolate(frags, faces, torch.zeros(25, 2, dtype=torch.int64))
        with pytest.raises(ValueError, match="batch size"):
            interpolate(frags, faces, torch.zeros(2, 25, 2))
        with pytest.raises(ValueError, match="rows"):
            interpolate(frags, faces[:3], torch.zeros(25, 2))


class TestFaceLabels:
    def test_labels(self):
        quad = torch.tensor([[[0.0, 0.0, 0.0], [8.0, 0.0, 0.0], [8.0, 8.0, 0.0], [0.0, 8.0, 0.0]]])
        faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
        frags = rasterize(quad, faces, (10, 10))
        mask = face_labels(frags, torch.tensor([1, 2], dtype=torch.uint8))
        assert mask.dtype == torch.uint8 and mask.shape == (1, 10, 10)
        assert mask[0, 1, 6] == 1 and mask[0, 6, 1] == 2
        assert (mask[0, 8:, :] == 0).all() and (mask[0, :, 8:] == 0).all()
        assert set(mask.unique().tolist()) == {0, 1, 2}

    def test_exceptions(self):
        frags = rasterize(
            torch.tensor([[[0.0, 0, 0], [8, 0, 0], [0, 8, 0]]]), torch.tensor([[0, 1, 2]]), (10, 10)
        )
        with pytest.raises(ValueError, match=r"\(F,\)"):
            face_labels(frags, torch.ones(1, 1, dtype=torch.int64))
        with pytest.raises(ValueError, match=r"\[0, 255\]"):
            face_labels(frags, torch.tensor([300]))
        with pytest.raises(ValueError, match="integers"):
            face_labels(frags, torch.tensor([1.0]))
        with pytest.raises(ValueError, match="one per face"):
            face_labels(frags, torch.zeros(0, dtype=torch.int64))


class TestRenderUvMask:
    def test_uv_and_mask(self):
        verts, faces = grid_mesh(8, 8, 4.0, 4.0, 28.0, 28.0, jitter=0.2)
        uv = (verts[:, :2] - 4.0) / 24.0
        labels = torch.ones(faces.shape[0], dtype=torch.uint8)
        labels[10:20] = 2
        uv_map, mask = render_uv_mask(verts[None], faces, uv, labels, (32, 32))
        assert uv_map.shape == (1, 32, 32, 2) and uv_map.dtype == torch.float32
        assert mask.shape == (1, 32, 32) and mask.dtype == torch.uint8
        bg = mask == 0
        assert (uv_map[bg] == -1).all()
        assert ((uv_map[~bg] >= 0) & (uv_map[~bg] <= 1)).all()
        assert (mask == 2).any()

    def test_exceptions(self):
        verts, faces = grid_mesh(4, 4, 1.0, 1.0, 7.0, 7.0)
        labels = torch.ones(faces.shape[0], dtype=torch.uint8)
        with pytest.raises(ValueError, match=r"\(V, 2\)"):
            render_uv_mask(verts[None], faces, torch.zeros(16, 3), labels, (8, 8))
        with pytest.raises(ValueError, match="one uv per vertex"):
            render_uv_mask(verts[None], faces, torch.zeros(15, 2), labels, (8, 8))
        with pytest.raises(ValueError, match="labels"):
            render_uv_mask(verts[None], faces, torch.zeros(16, 2), labels[:-1], (8, 8))


# --------------------------------------------------------------------------------------------


def _smooth_image(h: int, w: int) -> torch.Tensor:
    ii, jj = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    return torch.stack([torch.sin(jj / 9.0), torch.cos(ii / 7.0), (ii + jj) / (h + w)], -1).float()


def _affine_uv(h: int, w: int) -> torch.Tensor:
    ii, jj = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    uv = torch.stack([0.1 + 0.8 * jj / w, 0.1 + 0.8 * ii / h], -1)
    uv[:4] = -1.0  # some background
    return uv


class TestUnwrapTexture:
    def test_smoke_shapes(self):
        tex, weight = unwrap_texture(_smooth_image(32, 32), _affine_uv(32, 32), 16)
        assert tex.shape == (16, 16, 3) and weight.shape == (16, 16)
        assert weight.sum() == 28 * 32  # every covered pixel lands in one texel

    def test_texel_placement(self):
        image = torch.tensor([[[1.0], [2.0]]])  # (H=1, W=2, C=1)
        uv = torch.tensor([[[0.1, 0.6], [1.0, 1.0]]])  # u -> column, v -> row; u = 1 is last
        tex, weight = unwrap_texture(image, uv, 4)
        assert tex[2, 0, 0] == 1.0 and weight[2, 0] == 1
        assert tex[3, 3, 0] == 2.0 and weight[3, 3] == 1
        assert weight.sum() == 2

    def test_batched_mean(self):
        image = torch.stack([torch.zeros(4, 4, 1), torch.ones(4, 4, 1)])
        uv = torch.full((2, 4, 4, 2), 0.5)
        tex, weight = unwrap_texture(image, uv, 2)
        assert weight[1, 1] == 32 and tex[1, 1, 0] == 0.5

    def test_exceptions(self):
        with pytest.raises(ValueError, match="floating-point"):
            unwrap_texture(torch.zeros(4, 4, 3, dtype=torch.uint8), torch.zeros(4, 4, 2), 8)
        with pytest.raises(ValueError, match="same"):
            unwrap_texture(torch.zeros(4, 4, 3), torch.zeros(4, 5, 2), 8)
        with pytest.raises(ValueError, match="tex_size"):
            unwrap_texture(torch.zeros(4, 4, 3), torch.zeros(4, 4, 2), 0)


class TestSampleTexture:
    @pytest.mark.parametrize("align_corners", [False, True])
    def test_unwrap_then_sample_roundtrip(self, align_corners):
        h = w = 96
        image, uv = _smooth_image(h, w), _affine_uv(h, w)
        tex_size = 64
        tex, weight = unwrap_texture(image, uv, tex_size)
        tex, _known = fill_texture_holes(tex, weight)
        out = sample_texture(tex, uv[None], align_corners=align_corners)
        assert out.shape == (1, h, w, 3)
        valid = uv[..., 0] >= 0
        # Texel quantisation: the colour change over one texel bounds the error. uv spans 0.8
        # of the image, so a texel covers w / (0.8 * tex_size) pixels; the largest slope of the
        # image is 1/7 per pixel.
        texel_px = w / (0.8 * tex_size)
        err = (out[0][valid] - image[valid]).abs()
        assert err.max() < texel_px / 7.0
        assert err.mean() < 0.1 * texel_px / 7.0
        assert (out[0][~valid] == 0).all()

    def test_align_corners_consistent(self):
        tex = torch.rand(8, 8, 2)
        uv = torch.rand(1, 10, 10, 2)
        a = sample_texture(tex, uv, align_corners=False)
        b = sample_texture(tex, uv, align_corners=True)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)

    def test_texel_centres(self):
        tex = torch.arange(16.0).view(4, 4, 1)
        centres = (torch.arange(4.0) + 0.5) / 4
        vv, uu = torch.meshgrid(centres, centres, indexing="ij")
        out = sample_texture(tex, torch.stack([uu, vv], -1)[None])
        torch.testing.assert_close(out[0], tex)

    def test_weight_ignores_unwritten_texels(self):
        tex = torch.zeros(4, 4, 1)
        tex[:, :2] = 5.0
        weight = torch.zeros(4, 4)
        weight[:, :2] = 1.0
        uv = torch.tensor([[[[0.5, 0.5], [0.9, 0.5]]]])  # between known/unknown; unknown only
        out = sample_texture(tex, uv, weight=weight)
        assert out[0, 0, 0, 0] == pytest.approx(5.0) and out[0, 0, 1, 0] == 0.0
        out = sample_texture(tex, uv)
        assert out[0, 0, 0, 0] == pytest.approx(2.5)

    def test_per_frame_texture(self):
        tex = torch.stack([torch.zeros(4, 4, 1), torch.ones(4, 4, 1)])
        uv = torch.full((2, 3, 3, 2), 0.5)
        out = sample_texture(tex, uv)
        assert (out[0] == 0).all() and (out[1] == 1).all()

    def test_exceptions(self):
        with pytest.raises(ValueError, match="uv"):
            sample_texture(torch.zeros(4, 4, 3), torch.zeros(1, 4, 4, 3))
        with pytest.raises(ValueError, match="batch size"):
            sample_texture(torch.zeros(3, 4, 4, 3), torch.zeros(2, 4, 4, 2))
        with pytest.raises(ValueError, match="weight"):
            sample_texture(torch.zeros(4, 4, 3), torch.zeros(1, 4, 4, 2), weight=torch.ones(3, 3))
        with pytest.raises(ValueError, match="mode"):
            sample_texture(torch.zeros(4, 4, 3), torch.zeros(1, 4, 4, 2), mode="bicubic")


class TestFillTextureHoles:
    def test_holes_are_filled(self):
        tex = torch.zeros(16, 16, 3)
        weight = torch.zeros(16, 16)
        tex[4:8, 4:8] = torch.tensor([0.2, 0.4, 0.6])
        weight[4:8, 4:8] = 3.0
        filled, known = fill_texture_holes(tex, weight)
        assert known.all() and known.dtype == torch.bool
        torch.testing.assert_close(filled, torch.tensor([0.2, 0.4, 0.6]).expand(16, 16, 3))

    def test_limited_iterations_and_known_texels_untouched(self):
        tex = torch.rand(10, 10, 1)
        weight = torch.zeros(10, 10)
        weight[5, 5] = 1.0
        weight[0, 0] = 1.0
        filled, known = fill_texture_holes(tex, weight, iterations=1)
        assert int(known.sum()) == 9 + 4
        assert filled[5, 5, 0] == tex[5, 5, 0] and filled[0, 0, 0] == tex[0, 0, 0]
        assert filled[9, 9, 0] == 0.0

    def test_linear_field_stays_in_range(self):
        ii, jj = torch.meshgrid(torch.arange(12.0), torch.arange(12.0), indexing="ij")
        tex = (ii + jj)[..., None]
        weight = ((ii - 6) ** 2 + (jj - 6) ** 2 < 9).float()
        filled, known = fill_texture_holes(tex, weight)
        assert known.all()
        lo, hi = tex[weight > 0].min(), tex[weight > 0].max()
        assert (filled >= lo).all() and (filled <= hi).all()

    def test_batched(self):
        tex = torch.zeros(2, 4, 4, 1)
        weight = torch.zeros(2, 4, 4)
        tex[0, 0, 0], tex[1, 3, 3] = 1.0, 2.0
        weight[0, 0, 0], weight[1, 3, 3] = 1.0, 1.0
        filled, known = fill_texture_holes(tex, weight)
        assert known.all()
        assert (filled[0] == 1).all() and (filled[1] == 2).all()

    def test_exceptions(self):
        with pytest.raises(ValueError, match="weight"):
            fill_texture_holes(torch.zeros(4, 4, 3), torch.zeros(4, 5))
        with pytest.raises(ValueError, match="iterations"):
            fill_texture_holes(torch.zeros(4, 4, 3), torch.zeros(4, 4), iterations=-1)
