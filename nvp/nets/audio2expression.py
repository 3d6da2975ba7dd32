"""Audio2ExpressionNet: audio feature windows -> 32-d audio-expressions -> blendshape coefficients.

The network of Neural Voice Puppetry (Thies et al., ECCV 2020, §5.1) in three parts:

* :class:`PerFrameAudioNet`: one frame's ``(W, D)`` audio feature window (W = 16 rows of
  D features, e.g. 29 DeepSpeech logits) -> a 32-d *audio-expression* in (-1, 1). Four
  stride-2 convolutions along time (16 -> 8 -> 4 -> 2 -> 1 rows), then three fully connected
  layers ending in tanh.
* :class:`TemporalFilter`: the content-aware filter. The audio-expressions of the T = 8
  frames around frame t -> softmax weights over the T frames -> their weighted sum.
* :class:`Audio2ExpressionNet`: both, plus one learned linear map per training sequence
  (``mapping``, ``(n_sequences, K, 32)``) from audio-expression space to the K = 76 generic
  blendshape coefficients: ``expression = expr_scale * mapping[s] @ audio_expression``.

Window convention (the authors' release, ``--look_ahead``)
----------------------------------------------------------
Output frame t uses the per-frame predictions of frames ``[t - 3, ..., t + 4]``: slot k of
the window holds frame ``t - current_slot + k`` (``current_slot = 3``), clamped to
``[0, n_frames - 1]`` at the sequence ends (:func:`window_indices`). The release's
"intermediate" (unfiltered) output is the prediction of slot ``seq_len // 2 = 4``, i.e.
frame t + 1, and the released filter weights peak there too: the released model leads the
audio by about one frame. Both slots are config values.

This module never imports Lightning; the training system lives elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from nvp.errors import ConfigError

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


class A2ENetConfigError(ConfigError, ValueError):
    """An invalid :class:`A2ENetConfig`; a ConfigError and a ValueError."""


@dataclass
class A2ENetConfig:
    """Architecture of :class:`Audio2ExpressionNet`.

    The defaults follow the paper; :func:`release_config` gives the settings of the authors'
    released checkpoint (they differ only in ``conv_slopes``).
    """

    feature_dim: int = 29
    """D, features per audio row; follows the audio feature type (29 DeepSpeech, 80 mel,
    39 MFCC with deltas, 384 Whisper)."""

    window: int = 16
    """W, feature rows per frame. The stride-2 convolutions must reduce it to a single row:
    ``1 <= window <= 2 ** len(conv_channels)`` (16 for four convolutions)."""

    conv_channels: list[int] = field(default_factory=lambda: [32, 32, 64, 64])
    """Output channels of the stride-2 time convolutions (kernel 3, padding 1, bias)."""

    conv_slopes: list[float] = field(default_factory=lambda: [0.02, 0.02, 0.02, 0.02])
    """Negative slope of the LeakyReLU after each time convolution. Paper: 0.02 everywhere;
    the release uses ``[0.02, 0.02, 0.2, 0.2]``."""

    fc_dims: list[int] = field(default_factory=lambda: [128, 64])
    """Hidden sizes of the fully connected layers (each followed by a LeakyReLU); a final
    linear layer to ``audio_expr_dim`` with tanh follows them."""

    fc_slope: float = 0.02
    """Negative slope of the LeakyReLUs of the fully connected layers."""

    audio_expr_dim: int = 32
    """Size of the audio-expression (the per-frame output, in (-1, 1))."""

    seq_len: int = 8
    """T, frames in the temporal-filter window."""

    current_slot: int = 3
    """Slot of the current frame t in the window: the window holds frames
    ``t - current_slot, ..., t - current_slot + seq_len - 1`` (release: 3, i.e. [t-3 .. t+4])."""

    intermediate_slot: int = 4
    """Slot whose unfiltered prediction is the ``intermediate`` output (release:
    ``seq_len // 2 = 4``, frame t + 1)."""

    temporal_filter: bool = True
    """Use the content-aware temporal filter. ``False`` is the per-frame ablation: the output of
    frame t is the per-frame prediction of ``current_slot`` (frame t itself) and no filter
    parameters are created."""

    filter_channels: list[int] = field(default_factory=lambda: [16, 8, 4, 2, 1])
    """Output channels of the filter's 1D convolutions over the T axis (kernel 3, padding 1,
    bias, each followed by a LeakyReLU, the last one included as in the release); the last
    must be 1 (one logit per slot)."""

    filter_slope: float = 0.02
    """Negative slope of the filter's LeakyReLUs."""

    dropout: float = 0.0
    """Dropout probability on the per-frame net's input feature windows and on the pooled
    convolution features before the fully connected layers (0 = none, as the paper);
    functional, so the parameter layout (and the release's checkpoint) is unchanged."""

    expr_scale: float = 10.0
    """Factor applied to every mapped output: ``expression = expr_scale * M @ audio_expr``
    (release: 10)."""

    mapping_init_std: float = 1.0
    """Std of the normal initialisation of the per-sequence maps (release: ``torch.randn``,
    i.e. 1)."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check the values; raises :class:`A2ENetConfigError` (a ``ValueError``).

        Runs in ``__post_init__`` and again when a network is built, since OmegaConf merges do
        not re-run ``__post_init__``.
        """
        validate_config(self)


def validate_config(cfg: A2ENetConfig) -> None:
    """Check an :class:`A2ENetConfig` or an OmegaConf object of that schema.

    Raises:
        A2ENetConfigError: (a ``ValueError``) naming every invalid field.
    """
    problems = _config_problems(cfg)
    if problems:
        raise A2ENetConfigError("invalid Audio2ExpressionNet config: " + "; ".join(problems))


def _config_problems(cfg: A2ENetConfig) -> list[str]:
    problems: list[str] = []
    n_convs = len(cfg.conv_channels)
    if cfg.feature_dim < 1:
        problems.append(f"feature_dim must be >= 1, got {cfg.feature_dim}")
    if n_convs < 1:
        problems.append("conv_channels must name at least one convolution")
    if len(cfg.conv_slopes) != n_convs:
        problems.append(
            f"conv_slopes has {len(cfg.conv_slopes)} values for {n_convs} conv_channels"
        )
    if any(c < 1 for c in cfg.conv_channels):
        problems.append(f"conv_channels must be >= 1, got {list(cfg.conv_channels)}")
    if not 1 <= cfg.window <= 2**n_convs:
        problems.append(
            f"window={cfg.window} is not reduced to one row by {n_convs} stride-2 convolutions "
            f"(needs 1 <= window <= {2**n_convs}); change window or conv_channels"
        )
    if any(d < 1 for d in cfg.fc_dims):
        problems.append(f"fc_dims must be >= 1, got {list(cfg.fc_dims)}")
    if cfg.audio_expr_dim < 1:
        problems.append(f"audio_expr_dim must be >= 1, got {cfg.audio_expr_dim}")
    if cfg.seq_len < 1:
        problems.append(f"seq_len must be >= 1, got {cfg.seq_len}")
    if not 0 <= cfg.current_slot < cfg.seq_len:
        problems.append(f"current_slot={cfg.current_slot} is outside [0, seq_len={cfg.seq_len})")
    if not 0 <= cfg.intermediate_slot < cfg.seq_len:
        problems.append(
            f"intermediate_slot={cfg.intermediate_slot} is outside [0, seq_len={cfg.seq_len})"
        )
    if cfg.temporal_filter and (
        len(cfg.filter_channels) < 1
        or cfg.filter_channels[-1] != 1
        or any(c < 1 for c in cfg.filter_channels)
    ):
        problems.append(
            f"filter_channels must be positive and end in 1, got {list(cfg.filter_channels)}"
        )
    if cfg.mapping_init_std < 0:
        problems.append(f"mapping_init_std must be >= 0, got {cfg.mapping_init_std}")
    if not 0 <= cfg.dropout < 1:
        problems.append(f"dropout must be in [0, 1), got {cfg.dropout}")
    return problems


def release_config(feature_dim: int = 29) -> A2ENetConfig:
    """The settings of the authors' released checkpoint (``a2e_latest_netG.pth``).

    Identical to the paper defaults except the LeakyReLU slopes of the time convolutions,
    ``[0.02, 0.02, 0.2, 0.2]``. The released filter applies a LeakyReLU after all five of its
    convolutions (the last one included), T = 8 with the window [t-3 .. t+4], the intermediate
    output from slot 4, and outputs are 10 x mapping @ audio-expression.

    Args:
        feature_dim: D of the audio features. The released weights need 29 (DeepSpeech); other
            values give the release's architecture for another feature type.
    """
    return A2ENetConfig(
        feature_dim=feature_dim,
        window=16,
        conv_channels=[32, 32, 64, 64],
        conv_slopes=[0.02, 0.02, 0.2, 0.2],
        fc_dims=[128, 64],
        fc_slope=0.02,
        audio_expr_dim=32,
        seq_len=8,
        current_slot=3,
        intermediate_slot=4,
        temporal_filter=True,
        filter_channels=[16, 8, 4, 2, 1],
        filter_slope=0.02,
        expr_scale=10.0,
        mapping_init_std=1.0,
    )


def window_indices(
    n_frames: int,
    seq_len: int = 8,
    current_slot: int = 3,
    device: torch.device | str | None = None,
) -> Tensor:
    """Frames in the temporal-filter window of every frame of a sequence.

    Row t is ``[t - current_slot, ..., t - current_slot + seq_len - 1]`` clamped to
    ``[0, n_frames - 1]``: edge frames are repeated, as in the release (frame 0 ->
    ``[0, 0, 0, 0, 1, 2, 3, 4]``; the last frame n-1 -> ``[n-4, n-3, n-2, n-1, n-1, n-1, n-1,
    n-1]`` for the defaults).

    Args:
        n_frames: N, frames in the sequence (>= 1).
        seq_len: T, frames per window.
        current_slot: slot of frame t in its own window, in ``[0, seq_len)``.
        device: device of the result.

    Returns:
        (N, T) int64 frame indices.
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    if not 0 <= current_slot < seq_len:
        raise ValueError(f"current_slot={current_slot} is outside [0, seq_len={seq_len})")
    t = torch.arange(n_frames, device=device)[:, None]
    k = torch.arange(seq_len, device=device)[None, :]
    return (t + k - current_slot).clamp_(0, n_frames - 1)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters of ``module`` (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def _xavier_(module: nn.Module) -> None:
    """Xavier-uniform weights (gain 1) and zero biases for every Conv1d / Linear in ``module``."""
    for m in module.modules():
        if isinstance(m, nn.Conv1d | nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class PerFrameAudioNet(nn.Module):
    """One frame's audio feature window -> its audio-expression.

    Layers (defaults): four ``Conv1d(kernel 3, stride 2, padding 1, bias)`` over the W time
    rows with the D features as input channels, each followed by a LeakyReLU
    (``(D, 16) -> (32, 8) -> (32, 4) -> (64, 2) -> (64, 1)``), then
    ``Linear 64 -> 128 -> 64 -> 32`` with LeakyReLU after all but the last, then tanh.

    The release's layers are ``Conv2d(kernel (3, 1), stride (2, 1), padding (1, 0))`` on the
    window transposed to ``(B, D, W, 1)``; the same numbers, with the Conv2d weight
    ``(C_out, C_in, 3, 1)`` squeezed to the Conv1d weight ``(C_out, C_in, 3)``.

    Parameters: ``conv.{0,2,4,6}`` (Conv1d) and ``fc.{0,2,4}`` (Linear); Xavier-uniform
    weights and zero biases at construction.
    """

    def __init__(self, cfg: A2ENetConfig) -> None:
        super().__init__()
        validate_config(cfg)
        self.feature_dim = cfg.feature_dim
        self.window = cfg.window
        self.out_dim = cfg.audio_expr_dim
        conv: list[nn.Module] = []
        c_in = cfg.feature_dim
        for c_out, slope in zip(cfg.conv_channels, cfg.conv_slopes, strict=True):
            conv += [nn.Conv1d(c_in, c_out, 3, stride=2, padding=1), nn.LeakyReLU(slope)]
            c_in = c_out
        self.conv = nn.Sequential(*conv)
        fc: list[nn.Module] = []
        for d in cfg.fc_dims:
            fc += [nn.Linear(c_in, d), nn.LeakyReLU(cfg.fc_slope)]
            c_in = d
        fc += [nn.Linear(c_in, cfg.audio_expr_dim), nn.Tanh()]
        self.fc = nn.Sequential(*fc)
        self.dropout = cfg.dropout
        _xavier_(self)

    def forward(self, windows: Tensor) -> Tensor:
        """Audio-expressions of independent frames.

        Args:
            windows: (B, W, D) float audio feature windows (W rows in time, D features).

        Returns:
            (B, audio_expr_dim) audio-expressions in (-1, 1), same dtype.
        """
        if windows.ndim != 3 or windows.shape[1:] != (self.window, self.feature_dim):
            raise ValueError(
                f"PerFrameAudioNet expects windows of shape (B, {self.window}, "
                f"{self.feature_dim}), got {tuple(windows.shape)}"
            )
        p = self.dropout if self.training else 0.0
        h = self.conv(nn.functional.dropout(windows, p).transpose(1, 2))  # (B, C, 1)
        return self.fc(nn.functional.dropout(h.flatten(1), p))


class TemporalFilter(nn.Module):
    """Content-aware temporal filter: T audio-expressions -> softmax weights -> weighted sum.

    Layers (defaults): five ``Conv1d(kernel 3, padding 1, bias)`` over the T axis with the
    audio-expression as channels, ``32 -> 16 -> 8 -> 4 -> 2 -> 1``, each followed by a
    LeakyReLU (the last one too, as in the release), then ``Linear(T, T)`` and a softmax over
    T.

    Parameters: ``conv.{0,2,4,6,8}`` (Conv1d) and ``linear``; Xavier-uniform weights and zero
    biases at construction.
    """

    def __init__(self, cfg: A2ENetConfig) -> None:
        super().__init__()
        validate_config(cfg)
        self.seq_len = cfg.seq_len
        self.dim = cfg.audio_expr_dim
        conv: list[nn.Module] = []
        c_in = cfg.audio_expr_dim
        for c_out in cfg.filter_channels:
            conv += [nn.Conv1d(c_in, c_out, 3, padding=1), nn.LeakyReLU(cfg.filter_slope)]
            c_in = c_out
        self.conv = nn.Sequential(*conv)
        self.linear = nn.Linear(cfg.seq_len, cfg.seq_len)
        _xavier_(self)

    def _check(self, audio_expr: Tensor) -> None:
        if audio_expr.ndim != 3 or audio_expr.shape[1:] != (self.seq_len, self.dim):
            raise ValueError(
                f"TemporalFilter expects audio-expressions of shape (B, {self.seq_len}, "
                f"{self.dim}), got {tuple(audio_expr.shape)}"
            )

    def logits(self, audio_expr: Tensor) -> Tensor:
        """Filter logits before the softmax.

        Args:
            audio_expr: (B, T, A) audio-expressions of the window's frames.

        Returns:
            (B, T) logits.
        """
        self._check(audio_expr)
        h = self.conv(audio_expr.transpose(1, 2))  # (B, 1, T)
        return self.linear(h.flatten(1))

    def forward(self, audio_expr: Tensor) -> tuple[Tensor, Tensor]:
        """Filtered audio-expression of the window.

        Args:
            audio_expr: (B, T, A) audio-expressions of the window's frames.

        Returns:
            ``(filtered (B, A), weights (B, T))``: weights >= 0 summing to 1 over T, and
            ``filtered = sum_k weights[:, k] * audio_expr[:, k]``.
        """
        weights = torch.softmax(self.logits(audio_expr), dim=1)
        return self.pool(audio_expr, weights), weights

    @staticmethod
    def pool(audio_expr: Tensor, weights: Tensor) -> Tensor:
        """Weighted sum over T: (B, T, A), (B, T) -> (B, A)."""
        return torch.bmm(audio_expr.transpose(1, 2), weights.unsqueeze(2)).squeeze(2)


class Audio2ExpressionNet(nn.Module):
    """Per-frame audio network, temporal filter and per-sequence expression maps.

    Args:
        cfg: architecture.
        n_sequences: number of training sequences, one ``(K, audio_expr_dim)`` map each.
        expression_dim: K, blendshape coefficients per frame (76 for the release).

    Attributes:
        per_frame: :class:`PerFrameAudioNet`.
        temporal_filter: :class:`TemporalFilter`, or ``None`` when ``cfg.temporal_filter`` is
            off.
        mapping: (n_sequences, K, audio_expr_dim) parameter, initialised
            ``N(0, cfg.mapping_init_std**2)`` (release: standard normal).
    """

    def __init__(self, cfg: A2ENetConfig, n_sequences: int, expression_dim: int) -> None:
        super().__init__()
        validate_config(cfg)
        if n_sequences < 1:
            raise ValueError(f"n_sequences must be >= 1, got {n_sequences}")
        if expression_dim < 1:
            raise ValueError(f"expression_dim must be >= 1, got {expression_dim}")
        self.cfg = cfg
        self.n_sequences = n_sequences
        self.expression_dim = expression_dim
        self.per_frame = PerFrameAudioNet(cfg)
        self.temporal_filter = TemporalFilter(cfg) if cfg.temporal_filter else None
        mapping = torch.empty(n_sequences, expression_dim, cfg.audio_expr_dim)
        nn.init.normal_(mapping, 0.0, cfg.mapping_init_std)
        self.mapping = nn.Parameter(mapping)

    # ----------------------------------------------------------------------------------------
    # pieces

    def filter_windows(self, per_frame: Tensor) -> tuple[Tensor, Tensor]:
        """Temporal filtering of per-frame predictions.

        Args:
            per_frame: (B, T, A) audio-expressions of the window slots.

        Returns:
            ``(filtered (B, A), weights (B, T))``. Without the filter: the prediction of
            ``current_slot`` and one-hot weights.
        """
        filtered, weights, _ = self._filter(per_frame)
        return filtered, weights

    def _filter(self, per_frame: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``filter_windows`` plus the (B, T) logits (0 / -inf without the filter)."""
        if self.temporal_filter is not None:
            logits = self.temporal_filter.logits(per_frame)
            weights = torch.softmax(logits, dim=1)
            return TemporalFilter.pool(per_frame, weights), weights, logits
        slot = self.cfg.current_slot
        if per_frame.ndim != 3 or per_frame.shape[1] != self.cfg.seq_len:
            raise ValueError(
                f"expected per-frame audio-expressions of shape (B, {self.cfg.seq_len}, A), "
                f"got {tuple(per_frame.shape)}"
            )
        weights = torch.zeros(per_frame.shape[:2], dtype=per_frame.dtype, device=per_frame.device)
        weights[:, slot] = 1.0
        logits = torch.full_like(weights, -math.inf)
        logits[:, slot] = 0.0
        return per_frame[:, slot], weights, logits

    def _select_mapping(self, sequence: Tensor | None, mapping: Tensor | None) -> Tensor | None:
        if sequence is not None and mapping is not None:
            raise ValueError("pass either sequence (a trained map) or mapping, not both")
        if mapping is not None:
            a = self.cfg.audio_expr_dim
            if mapping.ndim not in (2, 3) or mapping.shape[-1] != a:
                raise ValueError(
                    f"mapping must be (K, {a}) or (B, K, {a}), got {tuple(mapping.shape)}"
                )
            return mapping
        if sequence is not None:
            if sequence.ndim != 1:
                raise ValueError(f"sequence must be (B,) indices, got {tuple(sequence.shape)}")
            return self.mapping[sequence]
        return None

    def expressions(self, audio_expr: Tensor, mapping: Tensor) -> Tensor:
        """Blendshape coefficients ``expr_scale * M @ audio_expr``.

        Args:
            audio_expr: (B, A) audio-expressions.
            mapping: (K, A) one map for all, or (B, K, A) one per sample.

        Returns:
            (B, K) expression coefficients.
        """
        if mapping.ndim == 2:
            return self.cfg.expr_scale * (audio_expr @ mapping.transpose(0, 1))
        return self.cfg.expr_scale * torch.bmm(mapping, audio_expr.unsqueeze(2)).squeeze(2)

    def _outputs(
        self, per_frame: Tensor, sequence: Tensor | None, mapping: Tensor | None
    ) -> dict[str, Tensor]:
        filtered, weights, logits = self._filter(per_frame)
        out = {"per_frame": per_frame, "weights": weights, "logits": logits, "filtered": filtered}
        m = self._select_mapping(sequence, mapping)
        if m is not None:
            out["expression"] = self.expressions(out["filtered"], m)
            out["intermediate"] = self.expressions(per_frame[:, self.cfg.intermediate_slot], m)
        return out

    # ----------------------------------------------------------------------------------------
    # entry points

    def forward(
        self,
        windows: Tensor,
        sequence: Tensor | None = None,
        mapping: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Predictions for a batch of frame windows.

        Args:
            windows: (B, T, W, D) float: for each sample, the audio feature windows of the T
                frames of its temporal window (see :func:`window_indices`).
            sequence: (B,) int64 training-sequence index per sample, selects ``mapping[s]``.
            mapping: (K, A) or (B, K, A) map to use instead (e.g. a fitted target map).
                Without ``sequence`` and ``mapping`` the 76-d outputs are omitted.

        Returns:
            dict of

            * ``per_frame`` (B, T, A): unfiltered audio-expressions of the T slots;
            * ``weights`` (B, T): filter weights (softmax over T; one-hot at ``current_slot``
              without the filter);
            * ``logits`` (B, T): the filter's logits before the softmax;
            * ``filtered`` (B, A): the filtered audio-expression of the current frame;
            * ``expression`` (B, K): ``expr_scale * M @ filtered``;
            * ``intermediate`` (B, K): ``expr_scale * M @ per_frame[:, intermediate_slot]``.
        """
        cfg = self.cfg
        if windows.ndim != 4 or windows.shape[1:] != (cfg.seq_len, cfg.window, cfg.feature_dim):
            raise ValueError(
                f"Audio2ExpressionNet expects windows of shape (B, {cfg.seq_len}, {cfg.window}, "
                f"{cfg.feature_dim}), got {tuple(windows.shape)}"
            )
        b = windows.shape[0]
        per_frame = self.per_frame(windows.reshape(b * cfg.seq_len, cfg.window, -1))
        return self._outputs(per_frame.reshape(b, cfg.seq_len, -1), sequence, mapping)

    def sequence_forward(
        self,
        features: Tensor,
        mapping: Tensor | None = None,
        sequence: int | None = None,
        batch: int = 4096,
    ) -> dict[str, Tensor]:
        """Predictions for every frame of one sequence.

        The per-frame network runs once per frame; each frame's temporal window is then
        gathered from those predictions with :func:`window_indices` (clamped at both ends), so
        the result equals :meth:`forward` on ``features[window_indices(N)]`` without its T-fold
        redundant work.

        Args:
            features: (N, W, D) float, the audio feature window of each frame, in order.
            mapping: (K, A) map for the 76-d outputs (e.g. a fitted target map).
            sequence: index of a trained map to use instead of ``mapping``.
            batch: frames per chunk of the per-frame network and of the filter (memory bound).

        Returns:
            the dict of :meth:`forward` over the N frames (``per_frame`` is (N, T, A), the
            gathered windows) plus ``window_index`` (N, T) int64.
        """
        cfg = self.cfg
        if features.ndim != 3 or features.shape[1:] != (cfg.window, cfg.feature_dim):
            raise ValueError(
                f"sequence_forward expects features of shape (N, {cfg.window}, "
                f"{cfg.feature_dim}), got {tuple(features.shape)}"
            )
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        if mapping is not None and mapping.ndim != 2:
            raise ValueError(
                f"sequence_forward takes one (K, A) mapping, got {tuple(mapping.shape)}"
            )
        n = features.shape[0]
        frames = torch.cat([self.per_frame(c) for c in features.split(batch)])
        index = window_indices(n, cfg.seq_len, cfg.current_slot, device=features.device)
        seq = None
        if sequence is not None:
            seq = torch.full((n,), int(sequence), dtype=torch.long, device=features.device)
        chunks = [
            self._outputs(
                frames[i],
                None if seq is None else seq[: i.shape[0]],
                mapping,
            )
            for i in index.split(batch)
        ]
        out = {key: torch.cat([c[key] for c in chunks]) for key in chunks[0]}
        out["window_index"] = index
        return out

    def audio_expressions(self, features: Tensor, batch: int = 4096) -> Tensor:
        """Filtered audio-expressions of every frame of a sequence (e.g. to fit a target map).

        Args:
            features: (N, W, D) float, the audio feature window of each frame, in order.
            batch: frames per chunk.

        Returns:
            (N, A) filtered audio-expressions (the per-frame prediction of ``current_slot``
            without the filter).
        """
        return self.sequence_forward(features, batch=batch)["filtered"]
