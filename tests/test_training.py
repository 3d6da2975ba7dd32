"""Run directories shared by the processes of a distributed run."""

from __future__ import annotations

import os

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from nvp.config import PreprocessConfig, TrainerConfig, load
from nvp.training import (
    BEST_CKPT,
    LAST_CKPT,
    RUN_DIR_ENV,
    make_trainer,
    resolve_resume,
    run_checkpoint,
    shared_run_dir,
)


def test_first_process_creates_and_exports(tmp_path, monkeypatch):
    monkeypatch.delenv(RUN_DIR_ENV, raising=False)
    cfg = load(PreprocessConfig)
    with shared_run_dir(tmp_path, "job", cfg) as run:
        assert os.environ[RUN_DIR_ENV] == str(run)
        assert (run / "config.yaml").is_file()
        # a worker process started now inherits the variable and joins the same directory
        with shared_run_dir(tmp_path, "job", cfg) as same:
            assert same == run
    assert RUN_DIR_ENV not in os.environ
    with shared_run_dir(tmp_path, "job", cfg) as later:
        assert later != run  # a later run in the same process gets a fresh directory


def test_external_launcher_directory(tmp_path, monkeypatch):
    target = tmp_path / "shared"
    monkeypatch.setenv(RUN_DIR_ENV, str(target))
    with shared_run_dir(tmp_path, "job", load(PreprocessConfig)) as run:
        assert run == target and (run / "config.yaml").is_file()
    assert os.environ[RUN_DIR_ENV] == str(target)  # not ours to remove


class _WorseEveryEpoch(pl.LightningModule):
    """One parameter; the validation metric grows every epoch (best = the first epoch)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        return (self.w - batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val/err", float(self.current_epoch))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.ones(4, 1)), batch_size=2)

    def val_dataloader(self):
        return DataLoader(TensorDataset(torch.ones(2, 1)), batch_size=2)


def test_last_checkpoint_is_the_latest_state_and_best_the_best(tmp_path):
    """``last.ckpt`` follows every epoch even when the monitored metric gets worse (what
    ``resume=`` continues from); ``best.ckpt`` keeps the best epoch (what a run stands for)."""
    t = TrainerConfig(max_epochs=3, accelerator="cpu", devices="1", enable_progress_bar=False)
    trainer = make_trainer(tmp_path, t, [], monitor="val/err", mode="min")
    trainer.fit(_WorseEveryEpoch())
    last = torch.load(tmp_path / "checkpoints" / LAST_CKPT, weights_only=False)
    best = torch.load(tmp_path / "checkpoints" / BEST_CKPT, weights_only=False)
    assert (last["epoch"], last["global_step"]) == (2, 6)
    assert (best["epoch"], best["global_step"]) == (0, 2)
    assert sorted(f.name for f in (tmp_path / "checkpoints").iterdir()) == [BEST_CKPT, LAST_CKPT]
    assert run_checkpoint(tmp_path) == tmp_path / "checkpoints" / BEST_CKPT
    assert resolve_resume(str(tmp_path)) == str(tmp_path / "checkpoints" / LAST_CKPT)
    (tmp_path / "checkpoints" / BEST_CKPT).unlink()
    assert run_checkpoint(tmp_path) == tmp_path / "checkpoints" / LAST_CKPT


def test_failed_start_leaves_no_empty_run_directory(tmp_path):
    cfg = load(PreprocessConfig)
    with pytest.raises(ValueError), shared_run_dir(tmp_path, "x", cfg) as run:
        assert (run / "config.yaml").is_file()
        raise ValueError("a wrong setting found after the run directory was made")
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError), shared_run_dir(tmp_path, "x", cfg) as run:
        (run / "logs").mkdir()
        (run / "logs" / "metrics.csv").write_text("step\n0\n")
        raise ValueError("failed after training started")
    assert (run / "logs" / "metrics.csv").is_file()  # a run that logged something is kept
