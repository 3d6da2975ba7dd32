"""nvp.tracking."""
