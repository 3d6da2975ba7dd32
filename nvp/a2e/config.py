"""Configuration of the generalized stage (``nvp train-a2e``) and the target mapping fit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from nvp.config import TrainerConfig
from nvp.nets.audio2expression import A2ENetConfig

__all__ = [
    "A2EConfig",
    "A2EDataConfig",
    "A2ELossConfig",
    "A2EOptimConfig",
    "FitTargetConfig",
    "TrainerConfig",
]


@dataclass
class A2ELossConfig:
    """Loss in vertex space (mm) through the face model's expression basis."""

    mouth_factor: float = 10.0
    """Weight of the mouth vertices relative to the rest (per-vertex weight
    ``1 + (mouth_factor - 1) * mouth_weight``; the paper weights the mouth 10x)."""
    temporal_weight: float = 20.0
    """lambda of the temporal term (forward, backward and central differences), paper: 20."""
    intermediate_weight: float = 0.0
    """Weight of the release's extra term on the unfiltered prediction of the intermediate
    slot (0 = off, as in the paper; the release uses 1)."""
    space: Literal["vertex", "coefficients"] = "vertex"
    """``vertex``: RMS of vertex offsets in mm (paper); ``coefficients``: RMS of the expression
    coefficients (an ablation; identical up to the mouth weighting for an orthonormal basis)."""


@dataclass
class A2EOptimConfig:
    """Adam with a linear learning-rate decay over the last epochs."""

    lr: float = 1e-4
    """Learning rate of the nets and the per-sequence maps (paper: 1e-4)."""
    beta1: float = 0.9
    """Adam beta1 (PyTorch default 0.9; the release uses 0.5)."""
    beta2: float = 0.999
    """Adam beta2."""
    weight_decay: float = 0.0
    """L2 weight decay."""
    decay_epochs: int = 30
    """The learning rate decays linearly to 0 over this many final epochs (paper: 30 of 50)."""


@dataclass
class A2EDataConfig:
    """Sampling of training windows from the sequence stores."""

    batch_size: int = 16
    """Samples per optimisation step and device (the global batch is this x devices x nodes;
    the learning rate is not rescaled with it)."""
    global_batch_size: int = 0
    """The intended global batch (0 = unset): when set, training stops with a ConfigError unless
    it equals ``batch_size`` x devices x nodes (a check for multi-device configs)."""
    samples_per_epoch: int = 0
    """Samples drawn per epoch over all devices together; 0 = as many as there are training
    frames."""
    sequence_weight: Literal["uniform", "sqrt", "frames"] = "uniform"
    """Share of each sequence in an epoch: ``uniform`` = the same for every sequence (the
    release: weight 1 / len per frame; a 60-s clip gets the share of a 3-s one), ``frames`` =
    proportional to its training frames (every frame equally likely), ``sqrt`` = proportional
    to the square root of its frames (in between)."""
    num_workers: int = 0
    """DataLoader worker processes."""
    in_memory_mb: int = 2048
    """Feature windows of a dataset smaller than this are held in RAM (float16); larger ones are
    read from the stores per sample."""
    sequences: list[str] = field(default_factory=list)
    """Store names to train on (empty = every store of the dataset)."""
    exclude: list[str] = field(default_factory=list)
    """Store names to leave out (e.g. held-out speakers)."""


@dataclass
class A2EConfig:
    """``nvp train-a2e``: the generalized Audio2ExpressionNet stage."""

    net: A2ENetConfig = field(default_factory=A2ENetConfig)
    loss: A2ELossConfig = field(default_factory=A2ELossConfig)
    optim: A2EOptimConfig = field(default_factory=A2EOptimConfig)
    data: A2EDataConfig = field(default_factory=A2EDataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    sequence_offset: bool = False
    """Add each training sequence's mean tracked expression (over its training frames) to its
    map's output, so the network and the maps model motion around a sequence's resting face
    instead of spending the tanh outputs on a constant (the paper: off)."""
    seed: int = 0
    """Seed of everything (weights, sampling)."""
    auto_feature_dim: bool = True
    """Take ``net.feature_dim`` and ``net.window`` from the dataset's feature windows (the
    resolved values are written to the run's config.yaml and the checkpoint)."""
    out: str = "runs/a2e"
    """Root folder of run directories (a fresh one per run)."""
    resume: str | None = None
    """A checkpoint (``last.ckpt``) or run directory to resume from."""
    name: str = "a2e"
    """Run name (prefix of the run directory)."""


@dataclass
class FitTargetConfig:
    """``nvp fit-target``: the person-specific mapping of a new target (closed form)."""

    ridge: float = 1.0
    """Ridge weight, relative to the data's energy per input dimension (``ridge = 1`` weighs
    the prior like one average frame per dimension of the 32-d audio-expression; see
    ``nvp.a2e.target.solve_mapping``)."""
    prior: Literal["mean", "zero"] = "mean"
    """What the ridge pulls the map towards: ``mean`` = the average of the training
    sequences' maps (a generic speaker: sensible with few target frames), ``zero``."""
    mode: Literal["coefficients", "vertex"] = "coefficients"
    """``coefficients``: least squares on the expression coefficients; ``vertex``: least squares
    on the mouth-weighted vertex offsets (differs from ``coefficients`` through the ridge
    term and the weighting)."""
    mouth_factor: float = 10.0
    """Mouth weight of the ``vertex`` mode (as the training loss)."""
    intercept: bool = True
    """Fit the map to the deviations from the means over the fit frames and store the
    target's mean expression as an offset (``expression = offset + s · M a``), so the ridge
    and the 32 columns are spent on motion rather than on the target's resting face.
    ``False``: no offset, as the paper's map."""
    gain: Literal["none", "lips"] = "lips"
    """``lips``: scale the fitted motion so that its lip-vertex variance over the fit frames
    equals the tracked one (least squares under ambiguity regresses towards the mean and
    shrinks the lip motion; this restores the target's own amplitude). ``none``: keep the
    least-squares map."""
    max_gain: float = 3.0
    """Upper bound of the ``lips`` gain (a map that explains almost nothing must not be
    blown up into noise)."""
    fit_splits: list[str] = field(default_factory=lambda: ["train"])
    """Splits of the target's frames the mapping is fitted on."""
    eval_splits: list[str] = field(default_factory=lambda: ["val", "test"])
    """Held-out splits the fit error is reported on."""
    batch: int = 256
    """Frames per forward pass."""
