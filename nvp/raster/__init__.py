"""nvp.raster."""
