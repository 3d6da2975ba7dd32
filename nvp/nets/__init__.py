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
from nvp.nets.texture import NeuralTexture
from nvp.nets.unet import (
    RenderUNet,
    UNetConfig,
    blending_config,
    erode_background,
    receptive_field,
)
from nvp.nets.vgg import VGGFeatures

__all__ = [
    "A2ENetConfig",
    "A2ENetConfigError",
    "Audio2ExpressionNet",
    "NeuralTexture",
    "PerFrameAudioNet",
    "RenderUNet",
    "TemporalFilter",
    "UNetConfig",
    "VGGFeatures",
    "blending_config",
    "count_parameters",
    "erode_background",
    "receptive_field",
    "release_config",
    "validate_config",
    "window_indices",
]
