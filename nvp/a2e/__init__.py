"""The generalized Audio2Expression stage: data, loss, training system, target maps, and the
import of the authors' released checkpoint (:mod:`nvp.a2e.official`)."""
