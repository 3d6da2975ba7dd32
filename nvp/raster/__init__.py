"""Mesh rasterization: per-pixel fragments, UV maps, label masks and texture helpers.

See :mod:`nvp.raster.rasterize` for the pixel and depth conventions and
:mod:`nvp.raster.texture` for the UV/texture conventions.
"""

from nvp.raster.rasterize import (
    BACKENDS,
    Fragments,
    face_labels,
    interpolate,
    rasterize,
    render_uv_mask,
)
from nvp.raster.texture import fill_texture_holes, sample_texture, unwrap_texture

__all__ = [
    "BACKENDS",
    "Fragments",
    "face_labels",
    "fill_texture_holes",
    "interpolate",
    "rasterize",
    "render_uv_mask",
    "sample_texture",
    "unwrap_texture",
]
