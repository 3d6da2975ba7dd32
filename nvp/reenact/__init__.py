"""nvp.reenact."""
