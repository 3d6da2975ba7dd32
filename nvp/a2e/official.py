"""Import of the authors' released Audio2ExpressionNet checkpoint.

The Neural Voice Puppetry release (github.com/JustusThies/NeuralVoicePuppetry) ships the
generalized network as a plain state_dict (``.../latest_netG.pth``, 27 tensors, 327,397
parameters) of its ``Audio2ExpressionsAttentionTMP4`` module. Release keys ->
:class:`~nvp.nets.audio2expression.Audio2ExpressionNet` keys:

* ``mapping`` (1, 116, 76, 32) -> ``mapping`` (116, 76, 32): one 76 x 32 map per training
  sequence;
* ``convNet.{0,2,4,6}.{weight,bias}``, Conv2d weights (C_out, C_in, 3, 1) ->
  ``per_frame.conv.{0,2,4,6}.*``, Conv1d weights (C_out, C_in, 3);
* ``fullNet.{0,2,4}.*`` (Linear) -> ``per_frame.fc.{0,2,4}.*``;
* ``attentionConvNet.{0,2,4,6,8}.*`` (Conv1d) -> ``temporal_filter.conv.{0,2,4,6,8}.*``;
* ``attentionNet.0.*`` (Linear 8 -> 8) -> ``temporal_filter.linear.*``.

The release's Conv2d layers run on the window transposed to ``(B, 29, 16, 1)`` with kernel
``(3, 1)``, so dropping the trailing unit axis of their weights gives the equivalent Conv1d
over time. Every tensor is copied exactly; nothing is re-scaled. The network settings the
weights need are :func:`nvp.nets.audio2expression.release_config` (conv LeakyReLU slopes
0.02, 0.02, 0.2, 0.2; window [t-3 .. t+4]; outputs 10 x mapping @ audio-expression).

The release is licensed CC BY-NC-SA 3.0 (non-commercial research and education only); nvp
reads the file the user supplies and ships none of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from nvp.errors import InputError
from nvp.nets.audio2expression import A2ENetConfig, Audio2ExpressionNet, release_config

__all__ = [
    "OFFICIAL_SHAPES",
    "load_official_checkpoint",
    "load_official_state_dict",
    "official_to_nvp",
]

_CONV = [0, 2, 4, 6]
_FC = [0, 2, 4]
_FILTER = [0, 2, 4, 6, 8]


def _release_shapes() -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {"mapping": (1, 116, 76, 32)}
    conv = [(32, 29), (32, 32), (64, 32), (64, 64)]
    for i, (c_out, c_in) in zip(_CONV, conv):
        shapes[f"convNet.{i}.weight"] = (c_out, c_in, 3, 1)
        shapes[f"convNet.{i}.bias"] = (c_out,)
    for i, (d_out, d_in) in zip(_FC, [(128, 64), (64, 128), (32, 64)]):
        shapes[f"fullNet.{i}.weight"] = (d_out, d_in)
        shapes[f"fullNet.{i}.bias"] = (d_out,)
    for i, (c_out, c_in) in zip(_FILTER, [(16, 32), (8, 16), (4, 8), (2, 4), (1, 2)]):
        shapes[f"attentionConvNet.{i}.weight"] = (c_out, c_in, 3)
        shapes[f"attentionConvNet.{i}.bias"] = (c_out,)
    shapes["attentionNet.0.weight"] = (8, 8)
    shapes["attentionNet.0.bias"] = (8,)
    return shapes


#: Key -> shape of the 27 tensors of the released ``latest_netG.pth``.
OFFICIAL_SHAPES: dict[str, tuple[int, ...]] = _release_shapes()


def _check_official(sd: Mapping[str, object], source: str | Path | None) -> None:
    """Raise :class:`InputError` unless ``sd`` has exactly the release's keys and shapes."""
    missing = sorted(set(OFFICIAL_SHAPES) - set(sd))
    extra = sorted(set(sd) - set(OFFICIAL_SHAPES))
    bad = [
        f"{k} {tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__} "
        f"(expected {OFFICIAL_SHAPES[k]})"
        for k, v in sd.items()
        if k in OFFICIAL_SHAPES
        and (
            not isinstance(v, Tensor)
            or tuple(v.shape) != OFFICIAL_SHAPES[k]
            or not v.is_floating_point()
        )
    ]
    if missing or extra or bad:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:6]}{' ...' if len(missing) > 6 else ''}")
        if extra:
            parts.append(f"unexpected keys {extra[:6]}{' ...' if len(extra) > 6 else ''}")
        if bad:
            parts.append(f"wrong tensors {bad[:4]}{' ...' if len(bad) > 4 else ''}")
        raise InputError(
            "not the released Audio2ExpressionNet state_dict (latest_netG.pth of "
            "audio2ExpressionsAttentionTMP4, 27 tensors): " + "; ".join(parts),
            source,
        )


def load_official_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Read the released ``latest_netG.pth`` (or ``50_netG.pth``) onto the CPU.

    Loaded with ``torch.load(weights_only=True)``: the file is a plain state_dict, so no code is
    unpickled.

    Args:
        path: the ``.pth`` file.

    Returns:
        the 27 release tensors by their release names (see :data:`OFFICIAL_SHAPES`).

    Raises:
        InputError: the file is missing or unreadable, or not that state_dict (wrong keys or
            shapes); the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(
            "released Audio2ExpressionNet checkpoint not found (expected the authors' "
            "latest_netG.pth)",
            path,
        )
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load raises many types on foreign or damaged files
        raise InputError(
            f"cannot read as a PyTorch state_dict ({type(e).__name__}: {str(e).splitlines()[0]})",
            path,
        ) from e
    if not isinstance(sd, Mapping):
        raise InputError(
            f"expected a state_dict (a mapping of tensors), found {type(sd).__name__}", path
        )
    _check_official(sd, path)
    return dict(sd)


def official_to_nvp(
    sd: Mapping[str, Tensor],
) -> tuple[A2ENetConfig, dict[str, Tensor], int, int]:
    """Convert the release's state_dict to one of :class:`Audio2ExpressionNet`.

    Args:
        sd: the release tensors (:func:`load_official_state_dict`).

    Returns:
        ``(cfg, state_dict, n_sequences, expression_dim)``: ``cfg`` is
        :func:`release_config` (D = 29), ``n_sequences`` = 116 and ``expression_dim`` = 76, so
        ``Audio2ExpressionNet(cfg, n_sequences, expression_dim).load_state_dict(state_dict)``
        rebuilds the released network. The tensors are exact copies (conv weights reshaped
        ``(C, C', 3, 1) -> (C, C', 3)``, mapping ``(1, S, K, A) -> (S, K, A)``).

    Raises:
        InputError: ``sd`` is not the release's state_dict.
    """
    _check_official(sd, None)
    out: dict[str, Tensor] = {"mapping": sd["mapping"][0].clone()}
    for i in _CONV:
        out[f"per_frame.conv.{i}.weight"] = sd[f"convNet.{i}.weight"][..., 0].clone()
        out[f"per_frame.conv.{i}.bias"] = sd[f"convNet.{i}.bias"].clone()
    for i in _FC:
        out[f"per_frame.fc.{i}.weight"] = sd[f"fullNet.{i}.weight"].clone()
        out[f"per_frame.fc.{i}.bias"] = sd[f"fullNet.{i}.bias"].clone()
    for i in _FILTER:
        out[f"temporal_filter.conv.{i}.weight"] = sd[f"attentionConvNet.{i}.weight"].clone()
        out[f"temporal_filter.conv.{i}.bias"] = sd[f"attentionConvNet.{i}.bias"].clone()
    out["temporal_filter.linear.weight"] = sd["attentionNet.0.weight"].clone()
    out["temporal_filter.linear.bias"] = sd["attentionNet.0.bias"].clone()
    out = {k: v.contiguous() for k, v in out.items()}
    _, n_sequences, expression_dim, _ = sd["mapping"].shape
    return release_config(feature_dim=29), out, int(n_sequences), int(expression_dim)


def load_official_checkpoint(path: str | Path) -> Audio2ExpressionNet:
    """The released network as an :class:`Audio2ExpressionNet` (CPU, float32, eval mode).

    Args:
        path: the release's ``latest_netG.pth``.

    Raises:
        InputError: see :func:`load_official_state_dict`.
    """
    cfg, sd, n_sequences, expression_dim = official_to_nvp(load_official_state_dict(path))
    net = Audio2ExpressionNet(cfg, n_sequences=n_sequences, expression_dim=expression_dim)
    net.load_state_dict(sd)
    return net.eval()


#: The audio features the released network was trained on (the authors' per-frame layout).
RELEASE_FEATURES = {
    "name": "deepspeech",
    "source": "DeepSpeech v0.1.0 character logits (authors' per-frame .npy layout)",
    "dim": 29,
    "rate_hz": 50.0,
    "window": 16,
    "stride": "video",
    "pad": "zero",
}


def import_official(path: str | Path, out: str | Path) -> Path:
    """Convert the authors' ``latest_netG.pth`` into an nvp A2E checkpoint.

    The result loads with :func:`nvp.a2e.checkpoint.load_a2e` and reproduces the release's
    outputs with the release's window convention (frames [t-3 … t+4], intermediate slot 4,
    ``10 · M · a``). It carries no face model: the release's 76 blendshapes belong to a
    licensed morphable model, so it serves as a reference network (parity, inspection of its
    filter), not as a target's A2E checkpoint for ``nvp fit-target``.
    """
    from nvp.a2e.checkpoint import save_a2e_checkpoint
    from nvp.a2e.config import A2EConfig
    from nvp.io.files import file_sha256

    net_cfg, sd, n_sequences, expression_dim = official_to_nvp(load_official_state_dict(path))
    net = Audio2ExpressionNet(net_cfg, n_sequences=n_sequences, expression_dim=expression_dim)
    net.load_state_dict(sd)
    cfg = A2EConfig(net=net_cfg)
    cfg.loss.intermediate_weight = 1.0
    cfg.optim.beta1 = 0.5
    return save_a2e_checkpoint(
        out,
        net,
        cfg,
        n_sequences=n_sequences,
        expression_dim=expression_dim,
        sequence_names=[f"release_identity_{i:03d}" for i in range(n_sequences)],
        feature_signature=dict(RELEASE_FEATURES),
        face_model=None,
        source={"official_checkpoint": str(Path(path).resolve()), "sha256": file_sha256(path, 64)},
    )
