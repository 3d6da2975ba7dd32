"""Rasterize posed triangle meshes into fragments, UV maps and label masks.

Pure PyTorch, batched over frames, exact (no anti-aliasing, no resampling), on CPU or GPU.

Conventions
-----------
``verts``
    ``(B, V, 3)`` float tensor in image space, **in pixels**: x to the right, y down, with the
    continuous convention: pixel ``(i, j)`` (row ``i``, column ``j``) covers
    ``[j, j + 1) x [i, i + 1)`` and its centre is ``(j + 0.5, i + 0.5)``. The third coordinate
    is the depth, **smaller = closer to the camera** (MediaPipe's convention); only its order
    matters, not its unit. Computations are done in float32.
``faces``
    ``(F, 3)`` integer vertex indices into ``verts``, shared by every frame of the batch.
``size``
    ``(H, W)`` of the output images, in pixels.

Coverage rules
--------------
* A pixel belongs to a triangle when its centre lies inside the triangle or on one of its edges
  (all three barycentric coordinates ``>= 0``). Degenerate triangles (zero area) cover nothing.
  The winding order does not matter (no back-face culling).
* Where several triangles cover a pixel, the one with the smallest interpolated depth wins
  (z-buffer, float32 depth); exact depth ties go to the lowest face index (so duplicated
  triangles resolve deterministically).
* The edge shared by two triangles is evaluated bit-identically by both, so a mesh without gaps
  is rasterized without holes: a pixel centre never falls "between" two adjacent triangles.
* Barycentric coordinates are the 2D (screen-space, affine) ones of the pixel centre, in the
  order of the face's vertices; they are non-negative and sum to 1 up to float32 rounding.

Algorithm (``backend="torch"``)
-------------------------------
Every triangle of every frame gets its pixel bounding box, clipped to the image; each pixel row
of a box is narrowed to the span the triangle can cover on that row (with a margin that is safe
against float32 rounding), so the candidates are essentially the covered pixels. The candidates
of all spans of the whole batch are enumerated with ``repeat_interleave`` (no padding to the
largest triangle); for each one the three edge functions decide coverage and the depth is
interpolated; the z-buffer is resolved with ``scatter_reduce(..., "amin")`` on a packed int64
key per pixel of the batch (the bits of the positive, shifted float32 depth in the high bits,
the triangle row, i.e. the face, in the low bits). The winners' barycentric coordinates are then
recomputed per covered pixel with the same float32 operations; that last step is differentiable
with respect to ``verts`` (the visibility decision is not). Candidates are processed in chunks,
so a huge triangle cannot exhaust the memory.

Depth ties are decided on float32 values: two triangles whose interpolated depths differ by less
than about 1e-7 of the depth range of the batch may be ordered either way.

``backend="pytorch3d"`` calls ``pytorch3d.renderer.mesh.rasterize_meshes`` instead (optional
dependency, typically faster on GPU); PyTorch3D counts pixel centres on an edge as outside, so
the two backends may differ on pixels whose centre lies exactly on a silhouette edge.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from nvp.errors import MissingDependencyError

__all__ = [
    "BACKENDS",
    "Fragments",
    "face_labels",
    "interpolate",
    "rasterize",
    "render_uv_mask",
]

Backend = Literal["torch", "pytorch3d"]

# Twice the signed area (px^2) below which a triangle counts as degenerate and covers nothing.
_DEGENERATE_AREA2 = 1e-12
# Relative float32 rounding margin (about 16 ulp) used to widen the per-row candidate spans so
# that they always contain every pixel centre that the exact float32 edge test accepts.
_SPAN_REL_MARGIN = 1e-6
# Absolute margin (px) added to the bounding boxes for the same reason.
_BBOX_MARGIN = 1e-3
# Candidate pixels processed at once (whole rows, so up to W more): bounds the peak memory. On
# the CPU small chunks keep the temporaries cached and reused; on a GPU large chunks avoid kernel
# launches. Must stay below 2**22 so that the float32 column arithmetic is exact.
_MAX_CANDIDATES = 1 << 16
_MAX_CANDIDATES_GPU = 1 << 22


def _chunk_size(device: torch.device) -> int:
    return _MAX_CANDIDATES if device.type == "cpu" else _MAX_CANDIDATES_GPU


_INT64_MAX = torch.iinfo(torch.int64).max


@dataclass(frozen=True, eq=False)
class Fragments:
    """Per-pixel result of rasterization.

    Attributes:
        face_idx: ``(B, H, W)`` int64, index (into ``faces``) of the visible triangle,
            ``-1`` on background.
        bary: ``(B, H, W, 3)`` float32 barycentric coordinates of the pixel centre in that
            triangle, in the order of the face's vertices; ``0`` on background.
    """

    face_idx: Tensor
    bary: Tensor

    @property
    def mask(self) -> Tensor:
        """``(B, H, W)`` bool, True where a triangle covers the pixel."""
        return self.face_idx >= 0

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)`` of the rasterized images."""
        return int(self.face_idx.shape[1]), int(self.face_idx.shape[2])


# --------------------------------------------------------------------------------------------
# Input validation


def _check_size(size: object) -> tuple[int, int]:
    if (
        not isinstance(size, tuple | list)
        or len(size) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in size)
    ):
        raise ValueError(f"size must be a pair of ints (H, W), got {size!r}")
    h, w = int(size[0]), int(size[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"size must be positive, got (H, W) = ({h}, {w})")
    return h, w


def _check_faces(faces: object, num_verts: int | None = None) -> Tensor:
    if not isinstance(faces, Tensor):
        raise ValueError(f"faces must be a torch.Tensor of shape (F, 3), got {type(faces)}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must have shape (F, 3), got {tuple(faces.shape)}")
    if faces.is_floating_point() or faces.is_complex() or faces.dtype == torch.bool:
        raise ValueError(f"faces must hold integer vertex indices, got dtype {faces.dtype}")
    faces = faces.long()
    if num_verts is not None and faces.numel() > 0:
        lo, hi = int(faces.min()), int(faces.max())
        if lo < 0 or hi >= num_verts:
            raise ValueError(
                f"faces index vertices in [{lo}, {hi}] but there are {num_verts} vertices "
                f"(valid indices: 0..{num_verts - 1})"
            )
    return faces


def _check_verts(verts: object) -> Tensor:
    if not isinstance(verts, Tensor):
        raise ValueError(f"verts must be a torch.Tensor of shape (B, V, 3), got {type(verts)}")
    if verts.ndim != 3 or verts.shape[2] != 3:
        hint = " (add a batch dimension with verts[None])" if verts.ndim == 2 else ""
        raise ValueError(f"verts must have shape (B, V, 3), got {tuple(verts.shape)}{hint}")
    if not verts.is_floating_point():
        raise ValueError(
            f"verts must be a floating-point tensor (pixel coordinates), got {verts.dtype}"
        )
    if verts.shape[0] == 0:
        raise ValueError("verts has an empty batch dimension (B = 0)")
    if not bool(torch.isfinite(verts).all()):
        raise ValueError("verts contains NaN or infinite coordinates")
    return verts


# --------------------------------------------------------------------------------------------
# Pure-torch rasterizer
#
# Tables are stored "structure of arrays": one row per quantity, one column per triangle (or
# triangle row, or candidate pixel), so that every elementwise operation runs on contiguous
# memory.

# Row blocks of the triangle table (3 rows each, one per edge or vertex): edge origin x / y,
# edge direction x / y, barycentric coefficient, vertex depth.
_OX, _OY, _DX, _DY, _COEF, _Z = (slice(3 * k, 3 * k + 3) for k in range(6))
# Rows of the candidate table: edge origin x (3), edge direction y and t = (py - oy) * dx, both
# multiplied by the sign of the barycentric coefficient (3 + 3), depth slope and offset along
# the row (1 + 1).
_C_OX, _C_DY, _C_T, _C_ZA, _C_ZB, _C_PX = slice(0, 3), slice(3, 6), slice(6, 9), 9, 10, 11
# float32 bits of +inf: keys at or above (_INF_BITS << rbits) mean "not covered".
_INF_BITS = 0x7F800000


def _triangle_table(verts: Tensor, faces: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-triangle edge-function parameters, flattened over (frame, face).

    Edge ``k`` is the edge opposite vertex ``k``. Each edge is evaluated from its vertex with the
    smaller index (origin ``o``) towards the other one (``d`` = other - o) as
    ``e(p) = (px - ox) * dy - (py - oy) * dx``, so two triangles sharing an edge compute the very
    same float32 value for a pixel centre; ``coef`` turns it into the barycentric coordinate of
    vertex ``k`` (``w_k = e_k * coef_k``) whatever the winding.

    Returns:
        table ``(18, B * F)`` float32 (row blocks ``_OX, _OY, _DX, _DY, _COEF, _Z``),
        xy ``(B * F, 3, 2)`` the vertex positions, valid ``(B * F,)`` bool (non-degenerate).
    """
    tri = verts[:, faces]  # (B, F, 3 vertices, 3 coords)
    x, y, z = tri.unbind(-1)  # each (B, F, 3)
    area2 = (x[..., 1] - x[..., 0]) * (y[..., 2] - y[..., 0]) - (y[..., 1] - y[..., 0]) * (
        x[..., 2] - x[..., 0]
    )
    start, end = [1, 2, 0], [2, 0, 1]  # edge k goes from vertex (k+1)%3 to (k+2)%3
    flip = faces[:, start] > faces[:, end]  # (F, 3): start from the smaller vertex index
    xs, ys, xe, ye = x[..., start], y[..., start], x[..., end], y[..., end]
    ox = torch.where(flip, xe, xs)
    oy = torch.where(flip, ye, ys)
    dx = torch.where(flip, xs, xe) - ox
    dy = torch.where(flip, ys, ye) - oy
    valid = area2.abs() > _DEGENERATE_AREA2
    safe_area2 = torch.where(valid, area2, torch.ones_like(area2))
    # Unflipped: e = -cross(v_end - v_start, p - v_start) = -area2 * w_k; flipped: +area2 * w_k.
    sign = torch.where(flip, 1.0, -1.0).to(area2.dtype)
    coef = sign / safe_area2[..., None]
    table = torch.cat([ox, oy, dx, dy, coef, z], -1).reshape(-1, 18).t().contiguous()
    return table, tri[..., :2].reshape(-1, 3, 2), valid.reshape(-1)


def _row_spans(rows: Tensor, t: Tensor, width: int) -> tuple[Tensor, Tensor]:
    """Columns ``[lo, hi]`` that a triangle can cover on a pixel row.

    Solves ``w_k(px, py) >= 0`` for px per edge and widens each bound by a margin that exceeds
    the float32 rounding error of both this computation and the exact edge test (about 16 ulp
    of the magnitudes involved), so the span contains every pixel centre that the float32 edge
    test accepts; this keeps the rasterization watertight.

    Args:
        rows: ``(18, R)`` triangle table columns (see :func:`_triangle_table`).
        t: ``(3, R)`` ``(py - oy) * dx`` of the row's pixel centres.
        width: image width W.
    """
    ox, dy = rows[_OX], rows[_DY]
    slope = rows[_COEF] * dy  # w_k = slope * (px - xstar)
    # nan/inf where dy == 0, but then slope == 0 and the edge gives no bound; the clamp keeps
    # the overflow of nearly horizontal edges finite (their bound is then useless but valid).
    q = (t / dy).clamp_(-1e30, 1e30)
    xstar = ox + q
    margin = _SPAN_REL_MARGIN * (ox.abs() + 2.0 * q.abs() + 2.0)
    inf = torch.tensor(float("inf"), dtype=rows.dtype, device=rows.device)
    lo = torch.where(slope > 0, xstar - margin, -inf).amax(0)
    hi = torch.where(slope < 0, xstar + margin, inf).amin(0)
    # Pixel j is a candidate when lo <= j + 0.5 <= hi.
    lo_j = torch.ceil(lo - 0.5).clamp_(-1, width).long()
    hi_j = torch.floor(hi - 0.5).clamp_(-1, width).long()
    return lo_j, hi_j


def _rasterize_torch(verts: Tensor, faces: Tensor, size: tuple[int, int]) -> Fragments:
    h, w = size
    b, f = verts.shape[0], faces.shape[0]
    device = verts.device
    hw = h * w
    face_idx = torch.full((b * hw,), -1, dtype=torch.int64, device=device)
    bary = torch.zeros((b * hw, 3), dtype=torch.float32, device=device)

    table, xy, valid = _triangle_table(verts.float(), faces)
    with torch.no_grad():
        # Pixel bounding boxes (inclusive), clipped to the image, in float64 to stay exact.
        xyd = xy.detach().double()
        lo = torch.ceil(xyd.amin(1) - 0.5 - _BBOX_MARGIN)  # (T, 2): x, y
        hi = torch.floor(xyd.amax(1) - 0.5 + _BBOX_MARGIN)
        limit = torch.tensor([w - 1, h - 1], dtype=lo.dtype, device=device)
        lo = torch.maximum(lo, torch.zeros_like(lo)).minimum(limit + 1).long()
        hi = torch.minimum(hi, limit).clamp(min=-1).long()
        jl, il = lo.unbind(1)
        jr, ir = hi.unbind(1)
        rows_per_tri = torch.where(valid & (jr >= jl), (ir - il + 1).clamp(min=0), 0)
        num_rows = int(rows_per_tri.sum())
        if num_rows == 0:
            return Fragments(face_idx.view(b, h, w), bary.view(b, h, w, 3))
        # One entry per (triangle, pixel row of its bounding box), in (frame, face) order.
        tri_ids = torch.arange(b * f, device=device)
        row_tri = torch.repeat_interleave(tri_ids, rows_per_tri, output_size=num_rows)
        row_start = torch.cumsum(rows_per_tri, 0) - rows_per_tri
        row_i = torch.arange(num_rows, device=device) + (il - row_start).index_select(0, row_tri)
        row_py = row_i.float() + 0.5

    with torch.no_grad():
        rows = table.detach().index_select(1, row_tri)  # (18, R)
        t = (row_py - rows[_OY]) * rows[_DX]  # the very expression used by the edge test
        lo_j, hi_j = _row_spans(rows, t, w)
        row_jl = torch.maximum(jl.index_select(0, row_tri), lo_j)
        row_jr = torch.minimum(jr.index_select(0, row_tri), hi_j)
        row_len = (row_jr - row_jl + 1).clamp_(min=0)
        row_base = torch.div(row_tri, f, rounding_mode="floor") * hw + row_i * w
        # Candidate table: sign(coef) * e_k >= 0 is the inside test (a sign flip is exact, so the
        # test equals w_k >= 0); the depth is affine along the row, z = za * px + zb, shifted to
        # be >= 1 so that the float32 bits sort like the values.
        sign = torch.sign(rows[_COEF])
        zc = (rows[_COEF] * rows[_Z]).double()  # z = sum_k zc_k * e_k
        dy64 = rows[_DY].double()
        za = (zc * dy64).sum(0)
        zb = -(zc * (rows[_OX].double() * dy64 + t.double())).sum(0)
        zb = zb + (1.0 - rows[_Z].amin().double())
        cand = torch.cat(
            [rows[_OX], sign * rows[_DY], sign * t, za.float()[None], zb.float()[None]], 0
        )  # (11, R)
        rbits = max(1, (num_rows - 1).bit_length())
        if rbits > 31:
            raise ValueError("too many triangle rows to rasterize at once; split the batch")
        buf = torch.full((b * hw,), _INT64_MAX, dtype=torch.int64, device=device)
        _zbuffer_rows(buf, cand, row_base, row_jl, row_len, rbits)

        # Decode the winners: the key's low bits are the row, rows are sorted by face.
        covered = (buf < (_INF_BITS << rbits)).nonzero().squeeze(1)
        win_row = buf.index_select(0, covered) & ((1 << rbits) - 1)
        win_tri = row_tri.index_select(0, win_row)
        win_face = win_tri - torch.div(win_tri, f, rounding_mode="floor") * f
        face_idx.index_copy_(0, covered, win_face)
        px = (covered - row_base.index_select(0, win_row)).float() + 0.5
        py = row_py.index_select(0, win_row)

    # Barycentrics of the winners, recomputed with the same float32 operations as the edge test
    # (so they are >= 0), from the table that carries gradients to verts; in chunks, like the
    # candidates.
    table = table[: _Z.start]
    chunk = _chunk_size(device)
    for a in range(0, covered.numel(), chunk):
        sl = slice(a, a + chunk)
        g = table.index_select(1, win_tri[sl])
        t = (py[sl] - g[_OY]) * g[_DX]
        wts = ((px[sl] - g[_OX]) * g[_DY] - t) * g[_COEF]
        bary.index_copy_(0, covered[sl], wts.t())
    return Fragments(face_idx.view(b, h, w), bary.view(b, h, w, 3))


def _zbuffer_rows(
    buf: Tensor, cand: Tensor, row_base: Tensor, row_jl: Tensor, row_len: Tensor, rbits: int
) -> None:
    """Scatter-min the packed (depth, row) keys of the candidate pixels of all rows into buf.

    The key holds the float32 bits of the (positive) depth above the row index; for positive
    floats the bit pattern has the order of the value, and rows are sorted by (frame, face), so
    equal depths resolve to the lowest face index. Candidates outside their triangle get the
    depth +inf. Candidates are processed in chunks of about :func:`_chunk_size` (whole rows).
    """
    device = buf.device
    num_rows = row_len.numel()
    ends = torch.cumsum(row_len, 0)
    total = int(ends[-1])
    bounds = [0, num_rows]
    chunk = _chunk_size(device)
    if total > chunk:
        steps = torch.arange(chunk, total, chunk, device=device)
        cuts = torch.searchsorted(ends, steps, right=True).tolist()
        bounds = [0, *sorted(set(cuts) - {0, num_rows}), num_rows]
    # Position of each row's first candidate within its chunk, then per-row offsets turning the
    # position of a candidate into its column (float, exact below 2**23) and its flat pixel.
    first = ends - row_len
    sizes = torch.tensor(bounds, device=device).diff()
    chunk_start = torch.cat([first.new_zeros(1), ends[[r - 1 for r in bounds[1:-1]]]])
    first = first - torch.repeat_interleave(chunk_start, sizes, output_size=num_rows)
    px_offset = (row_jl - first).float() + 0.5
    pix_offset = row_base + row_jl - first
    cand = torch.cat([cand, px_offset[None]], 0)  # (12, R)
    ends_list = [0, *ends[[r - 1 for r in bounds[1:]]].tolist()]
    longest = max(b - a for a, b in itertools.pairwise(ends_list))
    pos_f = torch.arange(longest, device=device, dtype=torch.float32)
    pos_i = torch.arange(longest, device=device)
    for k, (r0, r1) in enumerate(itertools.pairwise(bounds)):
        n = int(ends_list[k + 1] - ends_list[k])
        if n == 0:
            continue
        rows = torch.arange(r0, r1, device=device)
        rows = torch.repeat_interleave(rows, row_len[r0:r1], output_size=n)
        c = cand.index_select(1, rows)  # (12, n)
        px = pos_f[:n] + c[_C_PX]
        e = (px - c[_C_OX]) * c[_C_DY] - c[_C_T]  # sign(coef) * e, exactly
        depth = c[_C_ZA] * px + c[_C_ZB]
        depth = torch.where(e.amin(0) >= 0, depth, float("inf"))
        key = (depth.view(torch.int32).long() << rbits) | rows
        pix = pos_i[:n] + pix_offset.index_select(0, rows)
        buf.scatter_reduce_(0, pix, key, reduce="amin", include_self=True)


# --------------------------------------------------------------------------------------------
# PyTorch3D backend


def _rasterize_pytorch3d(verts: Tensor, faces: Tensor, size: tuple[int, int]) -> Fragments:
    try:
        from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
        from pytorch3d.structures import Meshes
    except ImportError as exc:
        raise MissingDependencyError(
            "backend='pytorch3d' needs the optional package pytorch3d, which is not installed "
            "(there is no PyPI wheel for it; build it from source following "
            "https://github.com/facebookresearch/pytorch3d/blob/main/INSTALL.md), "
            "or use backend='torch'"
        ) from exc
    h, w = size
    b, f = verts.shape[0], faces.shape[0]
    s = float(min(h, w))
    v = verts.float()
    # PyTorch3D NDC: +x left, +y up, the shorter image side spans [-1, 1], pixel centres at
    # the middle of their cell; it ignores points with negative depth, so shift z to >= 1
    # (a shift keeps the depth order).
    x_ndc = (w - 2.0 * v[..., 0]) / s
    y_ndc = (h - 2.0 * v[..., 1]) / s
    z_ndc = v[..., 2] - v[..., 2].amin(dim=1, keepdim=True) + 1.0
    meshes = Meshes(
        verts=torch.stack([x_ndc, y_ndc, z_ndc], -1),
        faces=faces.to(v.device)[None].repeat(b, 1, 1),
    )
    pix_to_face, _zbuf, bary, _dists = rasterize_meshes(
        meshes,
        image_size=(h, w),
        blur_radius=0.0,
        faces_per_pixel=1,
        perspective_correct=False,
        clip_barycentric_coords=False,
        cull_backfaces=False,
    )
    packed = pix_to_face[..., 0]  # index into the packed faces: frame * F + face
    offsets = (torch.arange(b, device=packed.device) * f).view(b, 1, 1)
    covered = packed >= 0
    face_idx = torch.where(covered, packed - offsets, -1)
    bary = torch.where(covered[..., None], bary[..., 0, :].float(), 0.0)
    return Fragments(face_idx, bary)


BACKENDS: dict[str, Callable[[Tensor, Tensor, tuple[int, int]], Fragments]] = {
    "torch": _rasterize_torch,
    "pytorch3d": _rasterize_pytorch3d,
}
"""Rasterizer implementations by name: ``fn(verts (B,V,3), faces (F,3) int64, (H, W))``."""


# --------------------------------------------------------------------------------------------
# Public API


def rasterize(
    verts: Tensor,
    faces: Tensor,
    size: tuple[int, int],
    *,
    backend: Backend = "torch",
) -> Fragments:
    """Rasterize a batch of posed meshes (one per frame, shared topology).

    Args:
        verts: ``(B, V, 3)`` float, pixel coordinates x (right), y (down) and depth z
            (smaller = closer); see the module docstring for the pixel convention.
        faces: ``(F, 3)`` integer vertex indices in ``[0, V)``.
        size: ``(H, W)`` of the output, in pixels.
        backend: ``"torch"`` (default, exact, pure PyTorch) or ``"pytorch3d"`` (optional
            dependency).

    Returns:
        :class:`Fragments` with ``face_idx`` ``(B, H, W)`` int64 (``-1`` = background) and
        ``bary`` ``(B, H, W, 3)`` float32 (``0`` on background), on the device of ``verts``.
        ``bary`` is differentiable with respect to ``verts`` for the torch backend.

    Raises:
        ValueError: on malformed inputs (shapes, dtypes, indices out of range, NaN) or an
            unknown backend.
        MissingDependencyError: ``backend="pytorch3d"`` without PyTorch3D installed.
    """
    verts = _check_verts(verts)
    faces = _check_faces(faces, num_verts=verts.shape[1]).to(verts.device)
    size = _check_size(size)
    try:
        impl = BACKENDS[backend]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown rasterizer backend {backend!r}; choose one of {sorted(BACKENDS)}"
        ) from None
    return impl(verts, faces, size)


def interpolate(frags: Fragments, faces: Tensor, attrs: Tensor, background: float = -1.0) -> Tensor:
    """Interpolate per-vertex attributes at every covered pixel with the barycentric coords.

    Args:
        frags: output of :func:`rasterize`.
        faces: ``(F, 3)`` the faces given to :func:`rasterize`.
        attrs: ``(V, C)`` attributes shared by all frames, or ``(B, V, C)`` per frame; float.
        background: value written on background pixels.

    Returns:
        ``(B, H, W, C)`` tensor of dtype ``promote(attrs.dtype, float32)``; exact affine
        interpolation inside each triangle, ``background`` elsewhere. Differentiable with
        respect to ``attrs`` (and ``verts`` through ``frags.bary``).
    """
    face_idx, bary = frags.face_idx, frags.bary
    b, h, w = face_idx.shape
    faces = _check_faces(faces).to(face_idx.device)
    if not isinstance(attrs, Tensor) or attrs.ndim not in (2, 3):
        shape = tuple(attrs.shape) if isinstance(attrs, Tensor) else type(attrs)
        raise ValueError(f"attrs must have shape (V, C) or (B, V, C), got {shape}")
    if not attrs.is_floating_point():
        raise ValueError(f"attrs must be a floating-point tensor, got {attrs.dtype}")
    if attrs.ndim == 3 and attrs.shape[0] != b:
        raise ValueError(f"attrs has batch size {attrs.shape[0]} but the fragments have {b} frames")
    num_verts = attrs.shape[-2]
    if faces.numel() > 0 and int(faces.max()) >= num_verts:
        raise ValueError(
            f"faces index vertex {int(faces.max())} but attrs has only {num_verts} vertices"
        )
    if face_idx.numel() > 0 and int(face_idx.max()) >= faces.shape[0]:
        raise ValueError(
            f"the fragments reference face {int(face_idx.max())} but faces has only "
            f"{faces.shape[0]} rows; pass the faces given to rasterize()"
        )
    attrs = attrs.to(face_idx.device)
    dtype = torch.promote_types(attrs.dtype, torch.float32)
    c = attrs.shape[-1]
    # Attributes at the corners of every face (of every frame): (F, 3C) or (B * F, 3C).
    corners = attrs.to(dtype)[..., faces, :].reshape(-1, 3 * c)
    flat_face = face_idx.reshape(-1)
    sel = (flat_face >= 0).nonzero().squeeze(1)
    tri = flat_face.index_select(0, sel)
    if attrs.ndim == 3:
        tri = tri + torch.div(sel, h * w, rounding_mode="floor") * faces.shape[0]
    corner = corners.index_select(0, tri).view(-1, 3, c)
    wts = bary.reshape(-1, 3).index_select(0, sel).to(dtype)[..., None]
    prod = corner * wts
    values = prod[:, 0] + prod[:, 1] + prod[:, 2]
    out = torch.full((b * h * w, c), background, dtype=dtype, device=face_idx.device)
    out.index_copy_(0, sel, values)
    return out.view(b, h, w, c)


def face_labels(frags: Fragments, labels: Tensor) -> Tensor:
    """Per-pixel label of the visible triangle.

    Args:
        frags: output of :func:`rasterize`.
        labels: ``(F,)`` integer label per triangle, in ``[0, 255]`` (e.g. 1 face, 2 mouth);
            ``0`` makes a triangle indistinguishable from background.

    Returns:
        ``(B, H, W)`` uint8, ``0`` on background.
    """
    if not isinstance(labels, Tensor) or labels.ndim != 1:
        shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels)
        raise ValueError(f"labels must have shape (F,), got {shape}")
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"labels must be integers in [0, 255], got dtype {labels.dtype}")
    if labels.numel() > 0 and (int(labels.min()) < 0 or int(labels.max()) > 255):
        raise ValueError(
            f"labels must lie in [0, 255] (stored as uint8), got [{int(labels.min())}, "
            f"{int(labels.max())}]"
        )
    face_idx = frags.face_idx
    if face_idx.numel() > 0 and int(face_idx.max()) >= labels.shape[0]:
        raise ValueError(
            f"the fragments reference face {int(face_idx.max())} but labels has only "
            f"{labels.shape[0]} entries (one per face expected)"
        )
    lut = torch.zeros(labels.shape[0] + 1, dtype=torch.uint8, device=face_idx.device)
    lut[1:] = labels.to(device=face_idx.device, dtype=torch.uint8)
    return lut.index_select(0, face_idx.reshape(-1) + 1).view(face_idx.shape)


def render_uv_mask(
    verts: Tensor,
    faces: Tensor,
    uv: Tensor,
    labels: Tensor,
    size: tuple[int, int],
    *,
    backend: Backend = "torch",
) -> tuple[Tensor, Tensor]:
    """Render the UV map and the label mask of a batch of posed meshes.

    Args:
        verts: ``(B, V, 3)`` float pixel coordinates and depth (see :func:`rasterize`).
        faces: ``(F, 3)`` integer vertex indices.
        uv: ``(V, 2)`` per-vertex texture coordinates (u, v), normally in ``[0, 1]``.
        labels: ``(F,)`` integer per-triangle labels in ``[1, 255]`` (e.g. 1 face, 2 mouth).
        size: ``(H, W)`` of the output, in pixels.
        backend: see :func:`rasterize`.

    Returns:
        ``uv_map`` ``(B, H, W, 2)`` float32 with ``-1`` on background (never resampled, so every
        pixel is either exactly ``-1`` or an interpolation inside one triangle), and
        ``mask`` ``(B, H, W)`` uint8 with ``0`` on background and the triangle's label elsewhere.
    """
    if not isinstance(uv, Tensor) or uv.ndim != 2 or uv.shape[1] != 2:
        shape = tuple(uv.shape) if isinstance(uv, Tensor) else type(uv)
        raise ValueError(f"uv must have shape (V, 2), got {shape}")
    if isinstance(verts, Tensor) and verts.ndim == 3 and uv.shape[0] != verts.shape[1]:
        raise ValueError(
            f"uv has {uv.shape[0]} vertices but verts has {verts.shape[1]}; one uv per vertex"
        )
    if (
        isinstance(faces, Tensor)
        and isinstance(labels, Tensor)
        and faces.ndim == 2
        and (labels.ndim != 1 or labels.shape[0] != faces.shape[0])
    ):
        raise ValueError(
            f"labels must have shape (F,) = ({faces.shape[0]},), got {tuple(labels.shape)}"
        )
    frags = rasterize(verts, faces, size, backend=backend)
    uv_map = interpolate(frags, faces, uv.float(), background=-1.0).float()
    return uv_map, face_labels(frags, labels)
