"""nvp.metrics."""
