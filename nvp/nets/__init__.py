"""nvp.nets."""
