"""nvp.audio."""
