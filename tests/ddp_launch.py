"""Launch a training stage with a parameter-dump callback (used by ``tests/test_ddp.py``).

    python tests/ddp_launch.py {a2e|render} DATA DUMP_DIR [--config YAML ...] [key=value ...]

Runs ``train_a2e`` / ``train_renderer`` as ``nvp train-a2e`` / ``nvp train-renderer`` would
(same default config layers) with one extra callback: every process writes
``DUMP_DIR/rank<R>.pt`` when training ends (its parameters, the per-step training losses,
the (sequence, frame) items and (renderer) crop corners of its own share of the batch, its
global step and the world size), and rank 0 also
``DUMP_DIR/init.pt`` (the parameters at the start of training, after DDP's broadcast).

``--split N`` (one process only) makes the training loss the mean of the losses of N
interleaved sub-batches (items 0, N, 2N, ... then 1, N + 1, ...): the loss a DDP run with N
processes optimises, as each rank takes every N-th item of the global batch and DDP
averages the ranks' gradients. It separates what DDP does from what the loss does with a
split batch (A2E's batch RMS, the renderer's face-masked l1 are not means over items).

A script rather than ``python -c``: Lightning's DDP launcher starts the other ranks by
running this same script again, with the same arguments.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from nvp.config import load

DEFAULTS = {"a2e": "a2e/default.yaml", "render": "render/cpu.yaml"}


def parameters(module: pl.LightningModule) -> dict[str, torch.Tensor]:
    return {n: p.detach().float().cpu().clone() for n, p in module.named_parameters()}


class ParamDump(Callback):
    """Writes each rank's parameters and losses at the end of training."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.losses: list[float] = []
        self.items: list[list[tuple[int, int]]] = []
        self.crops: list[list[tuple[int, int]]] = []

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        if trainer.global_rank == 0:
            torch.save(parameters(module), self.out / "init.pt")

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.losses.append(float(loss))
        frames = batch["frame"].tolist()
        seqs = batch["sequence"].tolist() if "sequence" in batch else [0] * len(frames)
        self.items.append(list(zip(seqs, frames)))
        if "crop_xy" in batch:
            self.crops.append([tuple(xy) for xy in batch["crop_xy"].tolist()])

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        torch.save(
            {
                "params": parameters(module),
                "losses": self.losses,
                "items": self.items,
                "crops": self.crops,
                "global_step": trainer.global_step,
                "world_size": trainer.world_size,
            },
            self.out / f"rank{trainer.global_rank}.pt",
        )


def split_training_loss(module_cls: type[pl.LightningModule], n: int) -> None:
    """Patch ``module_cls.training_step`` to average the losses of ``n`` interleaved
    sub-batches."""
    step = module_cls.training_step

    def training_step(self, batch, batch_idx):
        parts = [step(self, {k: v[r::n] for k, v in batch.items()}, batch_idx) for r in range(n)]
        return torch.stack(parts).mean()

    module_cls.training_step = training_step


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("stage", choices=sorted(DEFAULTS))
    p.add_argument("data")
    p.add_argument("dump")
    p.add_argument("--config", action="append", default=[])
    p.add_argument("--split", type=int, default=1)
    p.add_argument("overrides", nargs="*")
    args = p.parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.stage == "a2e":
        from nvp.a2e.config import A2EConfig as schema
        from nvp.a2e.module import Audio2ExpressionModule as module_cls
        from nvp.a2e.train import train_a2e as train
    else:
        from nvp.render.config import RenderConfig as schema
        from nvp.render.module import NeuralRendererModule as module_cls
        from nvp.render.train import train_renderer as train
    if args.split > 1:
        split_training_loss(module_cls, args.split)
    cfg = load(schema, DEFAULTS[args.stage], *args.config, cli=args.overrides)
    run = train(args.data, cfg, callbacks=[ParamDump(Path(args.dump))])
    print(f"run directory: {run}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
