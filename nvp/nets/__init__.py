"""Networks of nvp: plain ``nn.Module``s configured by dataclasses (no Lightning here)."""

from nvp.nets.audio2expression import (
    A2ENetConfig,
    A2ENetConfigError,
    Audio2ExpressionNet,
    PerFrameAudioNet,
    TemporalFilter,
    count_parameters,
    release_config,
    validate_config,
    window_indices,
)

__all__ = [
    "A2ENetConfig",
    "A2ENetConfigError",
    "Audio2ExpressionNet",
    "PerFrameAudioNet",
    "TemporalFilter",
    "count_parameters",
    "release_config",
    "validate_config",
    "window_indices",
]
