"""Shared pieces of the training entry points: the Trainer from a TrainerConfig, resuming."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger

from nvp.config import TrainerConfig, atomic_write_text, make_run_dir, to_yaml
from nvp.errors import InputError


def resolve_resume(resume: str | None) -> str | None:
    """A checkpoint path from ``resume`` (a ``.ckpt`` file or a run directory)."""
    if not resume:
        return None
    p = Path(resume)
    if p.is_dir():
        p = p / "checkpoints" / "last.ckpt"
    if not p.is_file():
        raise InputError("no checkpoint to resume from", path=p)
    return str(p)


def make_trainer(
    run: Path, t: TrainerConfig, callbacks: list[Callback], *, monitor: str | None, mode: str
) -> pl.Trainer:
    """A Trainer writing into the run directory: ``checkpoints/`` (``last.ckpt`` and the best by
    ``monitor``; only the last without a monitor), ``logs/metrics.csv``.

    Args:
        run: the run directory.
        t: trainer settings.
        callbacks: extra callbacks (sample plots, ...).
        monitor: validation metric of the best checkpoint, or None (no validation).
        mode: ``min`` or ``max`` for ``monitor``.
    """
    devices: int | str = int(t.devices) if str(t.devices).isdigit() else t.devices

    def limit(x: float) -> int | float:
        return int(x) if x > 1 else x

    return pl.Trainer(
        default_root_dir=run,
        max_epochs=t.max_epochs,
        max_steps=t.max_steps,
        max_time=t.max_time,
        accelerator=t.accelerator,
        devices=devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=t.precision,
        limit_train_batches=limit(t.limit_train_batches),
        limit_val_batches=limit(t.limit_val_batches) if monitor else 0,
        val_check_interval=t.val_check_interval,
        log_every_n_steps=t.log_every_n_steps,
        deterministic=t.deterministic,
        enable_progress_bar=t.enable_progress_bar,
        logger=CSVLogger(save_dir=str(run), name="logs", version=""),
        callbacks=[
            ModelCheckpoint(
                dirpath=run / "checkpoints",
                filename="epoch{epoch:03d}-step{step}",
                auto_insert_metric_name=False,
                monitor=monitor,
                mode=mode,
                save_top_k=1 if monitor else 0,
                save_last=True,
            ),
            *callbacks,
        ],
    )


#: Environment variable naming the run directory every process of a distributed run shares.
RUN_DIR_ENV = "NVP_RUN_DIR"


@contextmanager
def shared_run_dir(root: str | Path, name: str, cfg) -> Iterator[Path]:
    """The run directory of a training run, the same in every process of a DDP job.

    The first process creates a fresh directory and exports it as ``NVP_RUN_DIR``; the worker
    processes Lightning's launcher starts inherit the variable and use that directory
    instead of creating their own. With an external launcher (torchrun, SLURM) set
    ``NVP_RUN_DIR`` to one path for all ranks. The variable is removed again when the run
    ends (if this process set it), so later runs in the same process get fresh directories.
    """
    given = os.environ.get(RUN_DIR_ENV)
    if given:
        run = Path(given)
        run.mkdir(parents=True, exist_ok=True)
        if (
            not (run / "config.yaml").exists()
            and int(os.environ.get("RANK", "0")) == 0
            and int(os.environ.get("LOCAL_RANK", "0")) == 0
        ):
            atomic_write_text(run / "config.yaml", to_yaml(cfg))
        yield run
        return
    run = make_run_dir(root, name, cfg, runs_subdir=False)
    os.environ[RUN_DIR_ENV] = str(run)
    try:
        yield run
    finally:
        os.environ.pop(RUN_DIR_ENV, None)
