"""The triangle mesh over MediaPipe Face Mesh's 468 landmarks.

MediaPipe ships the mesh only as an edge list (``FACEMESH_TESSELATION``). Its
3-cliques give 854 triangles, two of them spurious ((49, 64, 129) and
(279, 294, 358) each cover a degree-3 vertex); without them the mesh is a
disk with three holes: the mouth opening and both eyes. The holes are closed
with quad strips between the upper and lower contours (18 triangles for the
mouth, 14 per eye), so the mouth interior gets texture coordinates and the
mesh is a closed disk of 898 triangles (Euler characteristic 1, no
non-manifold edge). Delaunay triangulation of the mean shape is not used: it
breaks half of the inner-lip contour.

Measured on 1,931 frames of real talking-head video, the mouth-strip
triangles never flip (the plain 468-point model never fully closes the lips).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

N_VERTICES = 468

#: Inner-lip contours, corner to corner (78 = right mouth corner, 308 = left).
MOUTH_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
MOUTH_LOWER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
#: Eye-opening contours, outer corner to inner corner.
RIGHT_EYE_UPPER = (33, 246, 161, 160, 159, 158, 157, 173, 133)
RIGHT_EYE_LOWER = (33, 7, 163, 144, 145, 153, 154, 155, 133)
LEFT_EYE_UPPER = (263, 466, 388, 387, 386, 385, 384, 398, 362)
LEFT_EYE_LOWER = (263, 249, 390, 373, 374, 380, 381, 382, 362)
#: Upper/lower inner-lip pairs whose mean distance measures mouth opening.
MOUTH_OPENING_PAIRS = ((82, 87), (13, 14), (312, 317))
#: Outer eye corners; their distance is the inter-ocular distance (IOD).
EYE_CORNERS = (33, 263)
SPURIOUS_CLIQUES = ((49, 64, 129), (279, 294, 358))

#: The 40 lip landmarks (the vertices of MediaPipe's ``FACEMESH_LIPS``) and the 16 contour
#: landmarks of each eye (``FACEMESH_LEFT_EYE`` / ``FACEMESH_RIGHT_EYE``), written out so
#: that training and rendering run where MediaPipe is not installed (a GPU machine);
#: ``tests/test_tracking.py`` checks them against MediaPipe's edge lists.
LIP_VERTICES = (
    0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181,
    185, 191, 267, 269, 270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402,
    405, 409, 415,
)  # fmt: skip
LEFT_EYE_VERTICES = (
    249, 263, 362, 373, 374, 380, 381, 382, 384, 385, 386, 387, 388, 390, 398, 466,
)  # fmt: skip
RIGHT_EYE_VERTICES = (
    7, 33, 133, 144, 145, 153, 154, 155, 157, 158, 159, 160, 161, 163, 173, 246,
)  # fmt: skip

#: Triangle labels written into the mask: 1 face, 2 mouth (lips and mouth interior).
LABEL_FACE = 1
LABEL_MOUTH = 2


def _connections() -> dict[str, frozenset[tuple[int, int]]]:
    from mediapipe.python.solutions import face_mesh_connections as fmc

    return {
        "tesselation": fmc.FACEMESH_TESSELATION,
        "lips": fmc.FACEMESH_LIPS,
        "left_eye": fmc.FACEMESH_LEFT_EYE,
        "right_eye": fmc.FACEMESH_RIGHT_EYE,
    }


def _strip(upper: tuple[int, ...], lower: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """Triangles of the quad strip between two contours that share their end points."""
    assert upper[0] == lower[0] and upper[-1] == lower[-1] and len(upper) == len(lower)
    tris = [(upper[0], upper[1], lower[1])]
    for i in range(1, len(upper) - 2):
        tris.append((upper[i], upper[i + 1], lower[i]))
        tris.append((upper[i + 1], lower[i + 1], lower[i]))
    tris.append((upper[-2], upper[-1], lower[-2]))
    return tris


def tessellation_cliques() -> np.ndarray:
    """The 3-cliques of ``FACEMESH_TESSELATION`` without the two spurious ones: (852, 3) int32."""
    edges = _connections()["tesselation"]
    nbrs: dict[int, set[int]] = {}
    for a, b in edges:
        nbrs.setdefault(a, set()).add(b)
        nbrs.setdefault(b, set()).add(a)
    tris = set()
    for a, b in edges:
        for c in nbrs[a] & nbrs[b]:
            tris.add(tuple(sorted((a, b, c))))
    tris -= {tuple(sorted(t)) for t in SPURIOUS_CLIQUES}
    return np.array(sorted(tris), dtype=np.int32)


@lru_cache(maxsize=1)
def face_mesh() -> tuple[np.ndarray, np.ndarray]:
    """The closed face mesh and its per-triangle labels.

    Returns:
        triangles: (898, 3) int32 vertex indices (winding not yet oriented; see
            :func:`nvp.tracking.face_model.orient_triangles`).
        labels: (898,) uint8, :data:`LABEL_MOUTH` for the mouth strip and triangles whose three
            vertices are lip landmarks, :data:`LABEL_FACE` otherwise.
    """
    cliques = tessellation_cliques()
    mouth = _strip(MOUTH_UPPER, MOUTH_LOWER)
    eyes = _strip(RIGHT_EYE_UPPER, RIGHT_EYE_LOWER) + _strip(LEFT_EYE_UPPER, LEFT_EYE_LOWER)
    tris = np.concatenate([cliques, np.array(mouth, np.int32), np.array(eyes, np.int32)])
    labels = np.full(len(tris), LABEL_FACE, np.uint8)
    labels[_inside_outer_lips(tris, seed=range(len(cliques), len(cliques) + len(mouth)))] = (
        LABEL_MOUTH
    )
    return tris, labels


def _inside_outer_lips(tris: np.ndarray, seed: range) -> np.ndarray:
    """Triangles inside the outer lip contour: a flood fill from the mouth strip that never
    crosses an outer-lip edge (lips + mouth interior). Returns a (F,) bool mask."""
    inner = set(MOUTH_UPPER) | set(MOUTH_LOWER)
    barrier = {
        tuple(sorted(e)) for e in _connections()["lips"] if e[0] not in inner and e[1] not in inner
    }
    by_edge: dict[tuple[int, int], list[int]] = {}
    for f, (a, b, c) in enumerate(tris.tolist()):
        for e in ((a, b), (b, c), (c, a)):
            by_edge.setdefault(tuple(sorted(e)), []).append(f)
    inside = np.zeros(len(tris), bool)
    stack = list(seed)
    while stack:
        f = stack.pop()
        if inside[f]:
            continue
        inside[f] = True
        a, b, c = tris[f].tolist()
        for e in ((a, b), (b, c), (c, a)):
            key = tuple(sorted(e))
            if key not in barrier:
                stack.extend(g for g in by_edge[key] if not inside[g])
    return inside


def lip_vertices() -> np.ndarray:
    """Indices of the 40 lip landmarks (``FACEMESH_LIPS``), sorted, int32."""
    return np.array(LIP_VERTICES, dtype=np.int32)


def eye_vertices(side: str) -> np.ndarray:
    """Indices of the 16 contour landmarks of one eye (``"left"`` or ``"right"``), int32."""
    return np.array({"left": LEFT_EYE_VERTICES, "right": RIGHT_EYE_VERTICES}[side], np.int32)


def index_sets() -> dict[str, np.ndarray]:
    """Named landmark index sets stored in the face model file."""
    return {
        "lips": lip_vertices(),
        "inner_lips": np.array(sorted(set(MOUTH_UPPER) | set(MOUTH_LOWER)), np.int32),
        "left_eye": eye_vertices("left"),
        "right_eye": eye_vertices("right"),
        "eye_corners": np.array(EYE_CORNERS, np.int32),
        "mouth_opening_pairs": np.array(MOUTH_OPENING_PAIRS, np.int32),
    }
