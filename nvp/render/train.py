"""``nvp train-renderer``: config -> target store frames -> module -> Trainer."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Callback

from nvp.config import to_object
from nvp.data.store import SequenceStore
from nvp.render.config import RenderConfig
from nvp.render.data import RendererDataModule
from nvp.render.module import NeuralRendererModule, SampleGrid
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
STAGE = STAGES["train-renderer"]
RENDER_TAGS = STAGE.tag_rules


def train_renderer(
    store: str | Path, cfg: DictConfig, callbacks: list[Callback] | None = None
) -> Path:
    """Train the neural texture and renderer of one target store; returns the run directory
    (``config.yaml``, ``checkpoints/``, ``logs/metrics.csv``, ``samples/`` grids).
    ``callbacks`` are added to the Trainer's (under DDP every process must pass the same
    ones)."""
    c: RenderConfig = to_object(cfg)
    pl.seed_everything(c.seed, workers=True)
    st = SequenceStore(store)
    dm = RendererDataModule(store, c.data, seed=c.seed)
    target = {
        "store": str(Path(store).resolve()),
        "name": st.name,
        "size": st.size,
        "face_model_hash": st.attrs.get("face_model", {}).get("hash"),
        "source_sha256": st.attrs.get("source", {}).get("sha256"),
        "expression_dim": int(st["expression"].shape[1]),
    }
    module = NeuralRendererModule(OmegaConf.to_container(cfg, resolve=True), target=target)
    if module.dynamic and not target["expression_dim"]:
        log.warning(
            "%s has no expression coefficients (a template face model): the dynamic texture "
            "cannot depend on the expression and acts as a static one; build the corpus' "
            "face model (nvp build-face-model) for an expression-conditioned texture",
            store,
        )
    if module.dynamic:  # restored from the checkpoint when resuming
        expr = np.asarray(st["expression"][...], np.float32)[dm.train_frames]
        module.texture.set_expression_stats(torch.from_numpy(expr))
    has_val = len(dm.val_frames) > 0
    ckpt_path = resolve_resume(c.resume)
    with shared_run_dir(c.out, c.name, cfg) as run, finish_wandb():
        log.info("run directory: %s", run)
        trainer = make_trainer(
            run,
            c.trainer,
            [SampleGrid(run / "samples"), *(callbacks or [])],
            monitor=STAGE.monitor.key if has_val else None,
            mode=STAGE.monitor.mode,
            config=cfg,
            tags=[STAGE.tag, *config_tags(cfg, RENDER_TAGS)],
        )
        check_batch_size(trainer, c.data.batch_size, c.data.global_batch_size)
        torch.set_float32_matmul_precision("high")
        trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    return run
