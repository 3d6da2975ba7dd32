"""nvp.render."""
