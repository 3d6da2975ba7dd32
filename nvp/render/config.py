"""Configuration of the person-specific stage (``nvp train-renderer``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nvp.config import TrainerConfig
from nvp.nets.unet import UNetConfig
from nvp.render.losses import RenderLossConfig


@dataclass
class TextureConfig:
    """The neural texture sampled at the rasterized UVs."""

    size: int = 256
    """Texture side in texels (paper: 256)."""
    channels: int = 16
    """Feature channels per texel (paper: 16)."""
    levels: int = 1
    """Resolution levels summed when sampling (1 = a single texture)."""
    dynamic: bool = False
    """Expression-conditioned texture (:class:`nvp.nets.texture.DynamicNeuralTexture`): a
    small network predicts from each frame's expression coefficients a filter applied to the
    learned texture before sampling (the release's dynamic neural texture)."""
    intermediate_channels: int = 16
    """Features stored in the dynamic texture before filtering (``channels`` come out)."""
    kernel: int = 3
    """Side of the dynamic texture's filter (odd)."""
    dynamic_scale: float = 0.1
    """Amplitude of the expression-dependent part of the dynamic filter."""


@dataclass
class RenderDataConfig:
    """Frames, UV maps and masks of one target store."""

    batch_size: int = 1
    """Images per optimisation step and device (global batch = this x devices x nodes; the
    learning rates are not rescaled with it)."""
    global_batch_size: int = 0
    """The intended global batch (0 = unset): when set, training stops with a ConfigError unless
    it equals ``batch_size`` x devices x nodes (a check for multi-device configs)."""
    crop: int = 0
    """Random square crops of this side for training (0 = full frames); validation always
    uses full frames."""
    band: int = 8
    """Pixels removed around the face region in the eroded background given to the
    blending network (so the original chin does not show), at the store's resolution."""
    num_workers: int = 0
    """DataLoader worker processes."""
    train_split: str = "train"
    """Split of the store used for training."""
    val_split: str = "val"
    """Split used for validation metrics and sample grids."""
    max_val_frames: int = 32
    """Validation frames (evenly spread over the validation split)."""


@dataclass
class RenderOptimConfig:
    """Adam with separate learning rates for the texture and the networks."""

    texture_lr: float = 1e-3
    """Learning rate of the neural texture."""
    net_lr: float = 1e-4
    """Learning rate of the rendering and blending networks."""
    beta1: float = 0.9
    """Adam beta1."""
    beta2: float = 0.999
    """Adam beta2."""


@dataclass
class RenderConfig:
    """``nvp train-renderer``: neural texture + dilated U-Net renderer + blending network."""

    texture: TextureConfig = field(default_factory=TextureConfig)
    renderer: UNetConfig = field(default_factory=UNetConfig)
    """Network 1: neural features -> RGB of the face."""
    blend: bool = True
    """Train the blending / inpainting network 2 (eroded frame + network 1 -> final frame)."""
    blend_width: int = 0
    """Base width of network 2 (0 = the renderer's)."""
    blend_mode: str = "direct"
    """``"direct"``: network 2's output is the final frame (paper). ``"residual"``: network 2
    outputs a correction added to the plain composite (eroded frame + network 1's face), so
    the kept background and the rendered face's detail pass through unchanged unless the
    network changes them; it learns the seams and the removed band."""
    loss: RenderLossConfig = field(default_factory=RenderLossConfig)
    optim: RenderOptimConfig = field(default_factory=RenderOptimConfig)
    metrics: dict[str, Any] = field(default_factory=dict)
    """Your own image metrics besides the built-in ones, by name: ``module:Class`` /
    ``file.py:Class``, or ``{ref: ..., options: {...}}`` (see
    :func:`nvp.metrics.image.extra_metrics`). Logged in validation as ``val/<name>`` and
    reported by ``nvp evaluate`` for targets with this renderer."""
    data: RenderDataConfig = field(default_factory=RenderDataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    seed: int = 0
    """Seed of everything."""
    out: str = "runs/render"
    """Root folder of run directories."""
    name: str = "render"
    """Run name (prefix of the run directory)."""
    resume: str | None = None
    """A checkpoint (``last.ckpt``) or run directory to resume from."""
