"""A2E checkpoints: what they hold and how to read them without Lightning.

An nvp A2E checkpoint is a ``torch.save`` dict (Lightning's own ``.ckpt`` from
``nvp train-a2e``, or one written by :func:`save_a2e_checkpoint`, e.g. by
``nvp import-official-a2e``) with:

* ``state_dict``: the network's weights under ``net.`` (plus, for Lightning
  checkpoints, the loss/metric buffers),
* ``hyper_parameters``: ``cfg`` (the resolved :class:`~nvp.a2e.config.A2EConfig`
  as a dict), ``n_sequences``, ``expression_dim``, ``sequence_names``,
  ``feature_signature`` (the audio feature settings the net was trained on),
* ``nvp``: ``face_model_npz`` (the face model file's bytes; absent for the
  authors' checkpoint, whose 76 blendshapes belong to a licensed model),
  ``face_model_hash``, and ``source`` for imported checkpoints.

:func:`load_a2e` rebuilds the network from the checkpoint alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from nvp.a2e.config import A2EConfig
from nvp.errors import InputError
from nvp.io.files import file_sha256
from nvp.nets.audio2expression import Audio2ExpressionNet
from nvp.tracking.face_model import FaceModel

FORMAT = "nvp-a2e"


@dataclass
class A2EBundle:
    """A loaded A2E checkpoint."""

    net: Audio2ExpressionNet
    cfg: A2EConfig
    face_model: FaceModel | None
    feature_signature: dict | None
    sequence_names: list[str]
    hash: str
    """16 hex digits of the checkpoint file's SHA-256."""
    path: Path


def load_a2e(path: str | Path, map_location: str | torch.device = "cpu") -> A2EBundle:
    """Rebuild the Audio2ExpressionNet (eval mode) and its metadata from a checkpoint.

    Raises:
        InputError: the file is missing, unreadable or not an nvp A2E checkpoint.
    """
    from nvp.training import run_checkpoint

    path = run_checkpoint(path)  # a run directory: its best (else last) checkpoint
    if not path.is_file():
        raise InputError("A2E checkpoint not found", path=path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise InputError(f"not a readable checkpoint ({exc})", path=path) from exc
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not hp or "cfg" not in hp or "state_dict" not in ckpt:
        raise InputError(
            "not an nvp A2E checkpoint (use `nvp import-official-a2e` for the authors' "
            "released .pth)",
            path=path,
        )
    cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(A2EConfig), hp["cfg"]))
    net = Audio2ExpressionNet(
        cfg.net, n_sequences=hp["n_sequences"], expression_dim=hp["expression_dim"]
    )
    sd = {k[4:]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    net.load_state_dict(sd)
    net.eval()
    extra = ckpt.get("nvp", {}) or {}
    blob = extra.get("face_model_npz")
    fm = FaceModel.from_bytes(blob, f"{path} (embedded face model)") if blob else None
    return A2EBundle(
        net=net,
        cfg=cfg,
        face_model=fm,
        feature_signature=hp.get("feature_signature"),
        sequence_names=list(hp.get("sequence_names") or []),
        hash=file_sha256(path),
        path=path,
    )


def save_a2e_checkpoint(
    path: str | Path,
    net: Audio2ExpressionNet,
    cfg: A2EConfig,
    *,
    n_sequences: int,
    expression_dim: int,
    sequence_names: list[str] | None = None,
    feature_signature: dict | None = None,
    face_model: FaceModel | None = None,
    source: dict[str, Any] | None = None,
) -> Path:
    """Write an nvp A2E checkpoint (atomically) that :func:`load_a2e` reads."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt = {
        "format": FORMAT,
        "state_dict": {f"net.{k}": v.detach().cpu() for k, v in net.state_dict().items()},
        "hyper_parameters": {
            "cfg": OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True),
            "n_sequences": n_sequences,
            "expression_dim": expression_dim,
            "sequence_names": sequence_names or [],
            "feature_signature": feature_signature,
        },
        "nvp": {
            "face_model_npz": face_model.to_bytes() if face_model else None,
            "face_model_hash": face_model.hash if face_model else None,
            "source": source or {},
        },
    }
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        torch.save(ckpt, tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
