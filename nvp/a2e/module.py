"""``Audio2ExpressionModule``: the LightningModule of the generalized stage.

It owns the loss, the metrics, the optimiser and the logging; the network is the
plain :class:`nvp.nets.audio2expression.Audio2ExpressionNet`. The face model's
basis, mouth weights and the training sequences' identities are buffers, so a
checkpoint restores them with the weights; the complete face model (mesh, UVs)
is added to the checkpoint by :meth:`on_save_checkpoint` (see
:mod:`nvp.a2e.checkpoint`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from torchmetrics import MeanSquaredError, MetricCollection, PearsonCorrCoef

from nvp.a2e.config import A2EConfig
from nvp.a2e.loss import ExpressionLoss
from nvp.metrics import VertexRMSE, mouth_opening_mm
from nvp.nets.audio2expression import Audio2ExpressionNet
from nvp.tracking import topology
from nvp.tracking.face_model import FaceModel


class Audio2ExpressionModule(pl.LightningModule):
    """Audio2ExpressionNet + per-sequence maps trained end to end in vertex space.

    Args:
        cfg: the resolved :class:`A2EConfig` as a plain dict (saved as hyper-parameters).
        n_sequences: training sequences (one 76 x 32 map each in the paper).
        expression_dim: K of the face model.
        n_vertices: V of the face model.
        face_model: the face model (basis, mouth weights, mesh); None when restoring from a
            checkpoint (the buffers are then loaded from the state dict).
        identities: (n_sequences, V, 3) identities of the training sequences, mm.
        sequence_names: names of the training sequences (kept in the checkpoint).
        feature_signature: the audio feature settings of the training stores.
        mean_expressions: (n_sequences, K) mean tracked expression of each training sequence,
            added to its map's output when ``cfg.sequence_offset`` is set.
    """

    def __init__(
        self,
        cfg: dict[str, Any],
        n_sequences: int,
        expression_dim: int,
        n_vertices: int = topology.N_VERTICES,
        face_model: FaceModel | None = None,
        identities: np.ndarray | None = None,
        sequence_names: list[str] | None = None,
        feature_signature: dict | None = None,
        mean_expressions: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["face_model", "identities", "mean_expressions"])
        self.cfg: A2EConfig = OmegaConf.to_object(
            OmegaConf.merge(OmegaConf.structured(A2EConfig), cfg)
        )
        self.net = Audio2ExpressionNet(
            self.cfg.net, n_sequences=n_sequences, expression_dim=expression_dim
        )
        K, V = expression_dim, n_vertices
        if face_model is not None:
            basis = torch.as_tensor(face_model.basis)
            mouth = torch.as_tensor(face_model.mouth_weight)
        else:
            basis = torch.zeros(V, 3, K)
            mouth = torch.zeros(V)
        ident = (
            torch.zeros(n_sequences, V, 3)
            if identities is None
            else torch.as_tensor(identities, dtype=torch.float32)
        )
        self.register_buffer("basis", basis.float())
        self.register_buffer("mouth_weight", mouth.float())
        self.register_buffer("identities", ident)
        offsets = torch.zeros(n_sequences, K)
        if self.cfg.sequence_offset and mean_expressions is not None:
            offsets = torch.as_tensor(mean_expressions, dtype=torch.float32)
        self.register_buffer("sequence_offsets", offsets)
        self.register_buffer(
            "opening_pairs", torch.as_tensor(topology.MOUTH_OPENING_PAIRS, dtype=torch.int64)
        )
        self._face_model = face_model
        self._build_losses()

    def _build_losses(self) -> None:
        self.criterion = ExpressionLoss(self.basis, self.mouth_weight, self.cfg.loss)
        lips = torch.zeros(self.basis.shape[0])
        lips[torch.as_tensor(topology.lip_vertices(), dtype=torch.int64)] = 1.0
        metrics = MetricCollection(
            {
                "vertex_rms_mm": VertexRMSE(self.basis),
                "vertex_rms_mouth_mm": VertexRMSE(self.basis, lips),
                "expression_rmse": MeanSquaredError(squared=False),
                "mouth_opening_r": PearsonCorrCoef(),
            }
        )
        self.val_metrics = metrics.clone(prefix="val/")

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The loss and metrics derive from buffers restored after __init__: rebuild them.
        sd = checkpoint["state_dict"]
        if "sequence_offsets" not in sd:  # checkpoints written before sequence offsets existed
            sd["sequence_offsets"] = torch.zeros_like(self.sequence_offsets)
        self.basis = sd["basis"].clone()
        self.mouth_weight = sd["mouth_weight"].clone()
        self._build_losses()
        blob = checkpoint.get("nvp", {}).get("face_model_npz")
        if blob is not None and self._face_model is None:
            self._face_model = FaceModel.from_bytes(blob)

    # ------------------------------------------------------------------------------- forward

    def predict_triplet(
        self, windows: torch.Tensor, sequence: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Expressions of frames t-1, t, t+1 from their shared feature windows.

        Args:
            windows: (B, T+2, W, D) feature windows of frames t-1-c … t+1-c+T-1.
            sequence: (B,) sequence indices (which per-sequence map).

        Returns:
            expressions (B, 3, K), the unfiltered intermediate prediction for t (B, K), and
            the filter weights of frame t (B, T).
        """
        B, n, W, D = windows.shape
        T = n - 2
        ae = self.net.per_frame(windows.reshape(B * n, W, D)).reshape(B, n, -1)
        stacked = torch.stack([ae[:, k : k + T] for k in range(3)], dim=1)  # (B, 3, T, 32)
        filtered, weights = self.net.filter_windows(stacked.reshape(B * 3, T, -1))
        filtered = filtered.reshape(B, 3, -1)
        M = self.net.mapping[sequence]  # (B, K, 32)
        s = self.cfg.net.expr_scale
        off = self.sequence_offsets[sequence]  # (B, K); zeros without sequence_offset
        expr = s * torch.einsum("bka,bna->bnk", M, filtered) + off[:, None]
        inter = s * torch.einsum("bka,ba->bk", M, ae[:, 1 + self.cfg.net.intermediate_slot]) + off
        return expr, inter, weights.reshape(B, 3, T)[:, 1]

    def _shared_step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        expr, inter, _ = self.predict_triplet(batch["windows"], batch["sequence"])
        target = batch["expression"]
        parts = self.criterion(expr, target, inter)
        bs = target.shape[0]
        for k, v in parts.items():
            self.log(
                f"{stage}/{k}", v, batch_size=bs, sync_dist=stage != "train", prog_bar=k == "loss"
            )
        if stage == "val":
            pred_t, tgt_t = expr[:, 1].contiguous(), target[:, 1].contiguous()
            ident = self.identities[batch["sequence"]]
            self.val_metrics["vertex_rms_mm"].update(pred_t, tgt_t)
            self.val_metrics["vertex_rms_mouth_mm"].update(pred_t, tgt_t)
            self.val_metrics["expression_rmse"].update(pred_t, tgt_t)
            self.val_metrics["mouth_opening_r"].update(
                mouth_opening_mm(ident, pred_t, self.basis, self.opening_pairs),
                mouth_opening_mm(ident, tgt_t, self.basis, self.opening_pairs),
            )
        return parts["loss"]

    def training_step(self, batch, batch_idx):
        return self._shared_step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._shared_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self.val_metrics.compute(), sync_dist=False)
        self.val_metrics.reset()

    # ----------------------------------------------------------------------------- optimiser

    def configure_optimizers(self):
        o = self.cfg.optim
        opt = torch.optim.Adam(
            self.net.parameters(), lr=o.lr, betas=(o.beta1, o.beta2), weight_decay=o.weight_decay
        )
        total = self.cfg.trainer.max_epochs
        start = max(0, total - o.decay_epochs)

        def factor(epoch: int) -> float:
            # constant, then linear decay to (almost) zero over the last decay_epochs epochs
            if epoch < start or o.decay_epochs <= 0:
                return 1.0
            return max(0.0, 1.0 - (epoch - start + 1) / (o.decay_epochs + 1))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}

    # ---------------------------------------------------------------------------- checkpoint

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Carry the complete face model (npz bytes) and the feature settings."""
        extra: dict[str, Any] = {"feature_signature": self.hparams.get("feature_signature")}
        if self._face_model is not None:
            extra["face_model_npz"] = self._face_model.to_bytes()
            extra["face_model_hash"] = self._face_model.hash
        checkpoint["nvp"] = extra
