"""nvp.data."""
