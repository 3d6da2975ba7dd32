"""nvp.a2e."""
