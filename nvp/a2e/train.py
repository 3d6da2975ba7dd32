"""``nvp train-a2e``: config -> data -> module -> Trainer, in one readable function."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Callback, LearningRateMonitor
from pytorch_lightning.utilities import rank_zero_only

from nvp.a2e.config import A2EConfig
from nvp.a2e.data import A2EDataModule
from nvp.a2e.module import Audio2ExpressionModule
from nvp.config import to_object
from nvp.errors import InputError
from nvp.stages import STAGES
from nvp.training import (
    check_batch_size,
    config_tags,
    finish_wandb,
    make_trainer,
    resolve_resume,
    shared_run_dir,
)

log = logging.getLogger(__name__)

#: The stage (config, monitor, tags); its W&B tag rules under their former name.
STAGE = STAGES["train-a2e"]
A2E_TAGS = STAGE.tag_rules


class MouthOpeningPlot(Callback):
    """After each validation: plot predicted vs tracked mouth opening (mm) of one validation
    sequence, saved as PNG in ``<run>/samples/`` and sent to loggers that take images."""

    def __init__(self, out_dir: Path, max_frames: int = 500) -> None:
        self.out_dir = Path(out_dir)
        self.max_frames = max_frames

    @rank_zero_only
    def on_validation_epoch_end(self, trainer: pl.Trainer, module: Audio2ExpressionModule):
        if trainer.sanity_checking:
            return
        dm = trainer.datamodule
        if not getattr(dm, "seqs", None):
            return
        seq_i = 0
        seq = dm.seqs[seq_i]
        a, b = seq.splits["val"]
        if b - a < 2:
            a, b = 0, min(seq.n_frames, self.max_frames)
        b = min(b, a + self.max_frames)
        feats = torch.as_tensor(seq.windows(np.arange(seq.n_frames)), device=module.device)
        with torch.no_grad():
            out = module.net.sequence_forward(feats, mapping=module.net.mapping[seq_i])
        from nvp.metrics import mouth_opening_mm

        ident = module.identities[seq_i]
        expr = out["expression"][a:b] + module.sequence_offsets[seq_i]
        pred = mouth_opening_mm(ident, expr, module.basis, module.opening_pairs)
        tgt = mouth_opening_mm(
            ident,
            torch.as_tensor(seq.expression[a:b], device=module.device),
            module.basis,
            module.opening_pairs,
        )
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(10, 3))
        t = np.arange(a, b) / 25.0
        ax.plot(t, tgt.cpu().numpy(), label="tracked", lw=1.5)
        ax.plot(t, pred.cpu().numpy(), label="predicted from audio", lw=1.2)
        ax.set_xlabel("time (s, at 25 fps)")
        ax.set_ylabel("mouth opening (mm)")
        ax.set_title(f"{seq.name}, epoch {trainer.current_epoch}")
        ax.legend(loc="upper right")
        fig.tight_layout()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"mouth_opening_epoch{trainer.current_epoch:03d}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        for lg in trainer.loggers:
            if hasattr(lg, "log_image"):
                lg.log_image(key="val/mouth_opening", images=[str(path)])


def dataset_feature_shape(dataset: str | Path) -> tuple[int, int, int]:
    """(frames, window, D) of the first store's ``audio_features``."""
    from nvp.data.store import SequenceStore, find_stores

    stores = find_stores(dataset)
    if not stores:
        raise InputError("no finished sequence stores", path=dataset)
    return tuple(SequenceStore(stores[0])["audio_features"].shape)


def train_a2e(
    dataset: str | Path, cfg: DictConfig, callbacks: list[Callback] | None = None
) -> Path:
    """Train the generalized stage on the stores of ``dataset``; returns the run directory.

    The run directory holds ``config.yaml``, ``checkpoints/`` (``last.ckpt`` and the best by
    validation mouth error), ``metrics.csv`` and ``samples/`` plots. ``callbacks`` are added
    to the Trainer's (under DDP every process must pass the same ones).
    """
    if cfg.auto_feature_dim:
        cfg = cfg.copy()
        _, w, d = dataset_feature_shape(dataset)
        cfg.net.feature_dim, cfg.net.window = d, w
    c: A2EConfig = to_object(cfg)
    pl.seed_everything(c.seed, workers=True)
    dm = A2EDataModule(dataset, c.data, c.net, seed=c.seed)
    module = Audio2ExpressionModule(
        OmegaConf.to_container(cfg, resolve=True),
        n_sequences=dm.n_sequences,
        expression_dim=dm.face_model.n_components,
        n_vertices=dm.face_model.n_vertices,
        face_model=dm.face_model,
        identities=dm.identities,
        sequence_names=dm.names,
        feature_signature=dm.feature_signature,
        mean_expressions=dm.mean_expressions() if c.sequence_offset else None,
    )
    dm.setup("fit")
    has_val = len(dm.val_set) > 0
    if not has_val:
        log.warning("no validation frames: checkpoints keep only the last epoch")
    ckpt_path = resolve_resume(c.resume)
    sig = dm.feature_signature
    audio = sig.get("name") if isinstance(sig, dict) else None
    tags = [STAGE.tag, *config_tags(cfg, A2E_TAGS), *([f"audio:{audio}"] if audio else [])]
    with shared_run_dir(c.out, c.name, cfg) as run, finish_wandb():
        log.info("run directory: %s", run)
        trainer = make_trainer(
            run,
            c.trainer,
            [
                LearningRateMonitor(logging_interval="epoch"),
                MouthOpeningPlot(run / "samples"),
                *(callbacks or []),
            ],
            monitor=STAGE.monitor.key if has_val else None,
            mode=STAGE.monitor.mode,
            config=cfg,
            tags=tags,
        )
        check_batch_size(trainer, c.data.batch_size, c.data.global_batch_size)
        torch.set_float32_matmul_precision("high")
        trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    return run
