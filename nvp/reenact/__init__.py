"""Inference: the TARGET bundle, ``nvp reenact`` / ``say`` (audio or text -> mp4) and
``nvp evaluate`` (self-reenactment metrics and report)."""

from nvp.reenact.config import EvaluateConfig, ReenactConfig, TTSConfig
from nvp.reenact.target import Target, load_target, make_target

__all__ = ["EvaluateConfig", "ReenactConfig", "TTSConfig", "Target", "load_target", "make_target"]
