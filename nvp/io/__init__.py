"""nvp.io."""
