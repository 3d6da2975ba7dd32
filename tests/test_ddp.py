"""Several devices: per-device vs global batch size, bf16-mixed, and DDP runs of both stages.

The DDP runs (``@pytest.mark.slow``: ``pytest -m slow tests/test_ddp.py``) train each stage
for a few steps with 2 CPU processes (gloo) through ``tests/ddp_launch.py`` and compare

* the ranks with each other: identical parameters, and ``last.ckpt`` holds them;
* with one process at the same global batch (``batch_size`` doubled, same seed and steps):
  every step trains on the same items (``nvp.data.sampling.StridedShard``);
* with one process whose loss is the mean of the two interleaved half batches' losses
  (``--split 2``, what DDP's gradient averaging optimises): equal up to float round-off;
* with a plain one-process run: close, but not equal, because the losses are not means over
  items (A2E's loss is a batch RMS, sqrt(mean): DDP averages grad sqrt(m_rank) instead of
  taking grad sqrt(m); the renderer's face l1 divides by the batch's face area).

A torchrun launch (slow as well) checks that ranks started by an external launcher share
``NVP_RUN_DIR``.

Measured on 2 CPU cores (|a - b| / |single - init| over all parameters): A2E (4 steps)
2.5e-9 against ``--split 2`` and 0.086 against the plain run; renderer (3 steps) 1.1e-4 and
1.9e-3. With Lightning's own distributed sampler (which reorders the items before splitting
them) the renderer's difference to the plain run was 0.38. The tolerances below leave a
margin of about 3-10x over these figures.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import Callback

from nvp.a2e.data import BalancedSampler
from nvp.cli import main
from nvp.config import CONF_DIR, load
from nvp.data.sampling import StridedShard, shard_for
from nvp.data.store import find_stores
from nvp.errors import ConfigError
from nvp.render.data import EpochPermutation
from nvp.training import RUN_DIR_ENV, check_batch_size

REPO = Path(__file__).resolve().parents[1]
LAUNCHER = REPO / "tests" / "ddp_launch.py"


# ------------------------------------------------------------------------- sharded sampling


class _Trainer:
    def __init__(self, world_size: int, global_rank: int) -> None:
        self.world_size, self.global_rank = world_size, global_rank


@pytest.mark.parametrize("n", [12, 11])
def test_strided_shards_cover_the_one_process_batches(n):
    one = list(EpochPermutation(n, seed=3))
    b, world = 2, 2
    shards = [shard_for(EpochPermutation(n, seed=3), _Trainer(world, r)) for r in range(world)]
    assert all(isinstance(s, StridedShard) for s in shards)
    assert all(len(s) == -(-n // world) for s in shards)
    items = [list(s) for s in shards]
    for step in range(n // (b * world)):
        ddp = sorted(x for it in items for x in it[step * b : (step + 1) * b])
        assert ddp == sorted(one[step * b * world : (step + 1) * b * world])
    assert {x for it in items for x in it} == set(one)  # odd n: padded with a repeat


def test_strided_shard_passes_the_epoch_on():
    seqs = np.array([0, 0, 1, 1, 1])
    s = StridedShard(BalancedSampler(seqs, 8, seed=5), 1, 2)
    s.set_epoch(3)
    assert s.sampler.epoch == 3
    ref = BalancedSampler(seqs, 8, seed=5)
    ref.set_epoch(3)
    assert list(s) == list(ref)[1::2]


def test_single_process_is_not_sharded():
    sampler = EpochPermutation(5)
    assert shard_for(sampler, None) is sampler
    assert shard_for(sampler, _Trainer(1, 0)) is sampler


# ---------------------------------------------------------------- per-device / global batch


def _ddp_trainer(devices: int = 2, num_nodes: int = 1) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        devices=devices,
        num_nodes=num_nodes,
        strategy="ddp",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def test_global_batch_size_uses_the_resolved_world_size(caplog):
    trainer = _ddp_trainer(devices=2, num_nodes=3)  # nothing is launched before fit
    with caplog.at_level("INFO", logger="nvp.training"):
        assert check_batch_size(trainer, 4) == 24
        assert check_batch_size(trainer, 4, 24) == 24
    assert "4 per device x 2 devices x 3 nodes = 24 global" in caplog.text
    with pytest.raises(ConfigError) as err:
        check_batch_size(trainer, 4, 16)
    msg = str(err.value)
    assert "data.global_batch_size=16" in msg and "data.batch_size=4" in msg and "= 24" in msg
    with pytest.raises(ConfigError, match=r"set data\.batch_size=3"):
        check_batch_size(trainer, 4, 18)
    with pytest.raises(ConfigError, match="not divisible by 6"):
        check_batch_size(trainer, 4, 20)
    with pytest.raises(ConfigError, match=">= 0"):
        check_batch_size(trainer, 4, -1)


@pytest.fixture(scope="module")
def store(tiny_dataset) -> Path:
    return find_stores(tiny_dataset)[0]


def test_wrong_global_batch_size_stops_training(store, a2e_dataset, tmp_path, capsys):
    tiny = str(CONF_DIR / "render" / "tiny.yaml")
    args = ["--config", tiny, f"out={tmp_path}", "data.global_batch_size=3"]
    assert main(["train-renderer", str(store), *args]) == 1
    err = capsys.readouterr().err
    assert "data.global_batch_size=3" in err and "data.batch_size=2" in err
    assert not list(tmp_path.glob("render-*/checkpoints/*.ckpt"))
    assert not list(tmp_path.iterdir())  # no run directory holding only config.yaml
    tiny = str(CONF_DIR / "a2e" / "tiny.yaml")
    args = ["--config", tiny, f"out={tmp_path}", "data.global_batch_size=5"]
    assert main(["train-a2e", str(a2e_dataset), *args]) == 1
    assert "data.global_batch_size=5" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------ bf16-mixed


class _DtypeProbe(Callback):
    """Records the trainer's precision and the dtype of a submodule's output in training
    (bfloat16 under bf16-mixed autocast)."""

    def __init__(self, attr: str) -> None:
        self.attr = attr
        self.dtypes: list[torch.dtype] = []
        self.precision = None

    def on_train_start(self, trainer, module) -> None:
        self.precision = trainer.precision
        sub = module
        for name in self.attr.split("."):
            sub = getattr(sub, name)
        sub.register_forward_hook(lambda m, i, o: self.dtypes.append(o.dtype))


def test_bf16_mixed_renderer_on_cpu(store, tmp_path):
    from nvp.render.config import RenderConfig
    from nvp.render.train import train_renderer

    cfg = load(
        RenderConfig,
        "render/cpu.yaml",
        "render/tiny.yaml",
        cli=[f"out={tmp_path}", "trainer.precision=bf16-mixed", "trainer.max_steps=1"],
    )
    probe = _DtypeProbe("renderer")
    run = train_renderer(store, cfg, callbacks=[probe])
    assert probe.precision == "bf16-mixed" and probe.dtypes[0] == torch.bfloat16
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 1
    assert ckpt["hyper_parameters"]["cfg"]["trainer"]["precision"] == "bf16-mixed"
    assert all(
        torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point()
    )


def test_bf16_mixed_a2e_on_cpu(a2e_dataset, tmp_path):
    from nvp.a2e.config import A2EConfig
    from nvp.a2e.train import train_a2e

    cfg = load(
        A2EConfig,
        "a2e/paper.yaml",
        "a2e/tiny.yaml",
        cli=[f"out={tmp_path}", "trainer.precision=bf16-mixed", "trainer.max_steps=1"],
    )
    probe = _DtypeProbe("net.per_frame")
    run = train_a2e(a2e_dataset, cfg, callbacks=[probe])
    assert probe.precision == "bf16-mixed" and probe.dtypes[0] == torch.bfloat16
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 1
    assert all(
        torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point()
    )


# ------------------------------------------------------------------------------ DDP runs

#: stage -> (dataset fixture, config, per-device batch, steps, tolerance against the plain
#: one-process run). A2E: 4 steps of 8 = 2 epochs of samples_per_epoch=16 (crosses an
#: epoch boundary: set_epoch reaches the sampler inside the shard).
STAGES = {
    "a2e": ("a2e_dataset", "a2e/tiny.yaml", 4, 4, 0.25),
    "render": ("tiny_dataset", "render/tiny.yaml", 2, 3, 0.1),
}
# (render: its face and mouth l1 terms divide by the mask area of each process's batch; the
# mouth region is small, so the plain one-process run differs by up to ~7 % of the update,
# while DDP equals the split loss to round-off, SPLIT_TOL.)
#: Tolerance against the one-process run with the split loss (round-off only).
SPLIT_TOL = 1e-3


def _launch(stage: str, data: Path, dump: Path, out: Path, *overrides: str, split: int = 1):
    env = {k: v for k, v in os.environ.items() if k != RUN_DIR_ENV}
    cmd = [
        sys.executable,
        str(LAUNCHER),
        stage,
        str(data),
        str(dump),
        "--split",
        str(split),
        "--config",
        STAGES[stage][1],
        f"out={out}",
        "trainer.accelerator=cpu",
        *overrides,
    ]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t0
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    run = Path(re.search(r"run directory: (\S+)", r.stdout).group(1))
    return run, wall, r.stderr


def _flat(params: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([params[k].flatten() for k in sorted(params)])


@pytest.mark.slow
@pytest.mark.parametrize("stage", sorted(STAGES))
def test_ddp_two_processes_match_one(stage, request, tmp_path):
    fixture, _, b, steps, single_tol = STAGES[stage]
    data = request.getfixturevalue(fixture)
    if stage == "render":
        data = find_stores(data)[0]
    common = [f"trainer.max_steps={steps}"]
    run, t_ddp, log_ddp = _launch(
        stage,
        data,
        tmp_path / "ddp",
        tmp_path / "out",
        *common,
        "trainer.strategy=ddp",
        "trainer.devices=2",
        f"data.batch_size={b}",
        f"data.global_batch_size={2 * b}",
    )
    _, t_one, _ = _launch(
        stage, data, tmp_path / "one", tmp_path / "out", *common, f"data.batch_size={2 * b}"
    )
    _, t_split, _ = _launch(
        stage,
        data,
        tmp_path / "split",
        tmp_path / "out",
        *common,
        f"data.batch_size={2 * b}",
        split=2,
    )
    # one shared run directory, the batch sizes logged once (rank zero)
    assert len(list((tmp_path / "out").iterdir())) == 3
    assert log_ddp.count(f"{b} per device x 2 devices x 1 nodes = {2 * b} global") == 1

    r0, r1 = (torch.load(tmp_path / "ddp" / f"rank{r}.pt") for r in (0, 1))
    one, split = (torch.load(tmp_path / d / "rank0.pt") for d in ("one", "split"))
    init = _flat(torch.load(tmp_path / "ddp" / "init.pt"))
    assert torch.equal(init, _flat(torch.load(tmp_path / "one" / "init.pt")))
    assert [r0["world_size"], r1["world_size"], one["world_size"]] == [2, 2, 1]
    assert r0["global_step"] == r1["global_step"] == one["global_step"] == steps

    # (a) every rank ends with the same parameters, and last.ckpt holds them
    for k in r0["params"]:
        assert torch.equal(r0["params"][k], r1["params"][k]), k
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    for k, v in r0["params"].items():
        assert torch.equal(ckpt["state_dict"][k].float(), v), k
    cfg = OmegaConf.create(ckpt["hyper_parameters"]["cfg"])
    assert cfg.trainer.strategy == "ddp" and cfg.data.global_batch_size == 2 * b

    # (b) the same items per step as one process with the doubled batch ...
    for s in range(steps):
        ddp_items = sorted(r0["items"][s] + r1["items"][s])
        assert ddp_items == sorted(one["items"][s]) == sorted(split["items"][s]), s
    # ... the split loss is what DDP optimises: equal losses, parameters up to round-off
    mean_loss = [(x + y) / 2 for x, y in zip(r0["losses"], r1["losses"])]
    torch.testing.assert_close(
        torch.tensor(mean_loss), torch.tensor(split["losses"]), rtol=1e-4, atol=0
    )
    ddp, single = _flat(r0["params"]), _flat(one["params"])
    update = (single - init).norm()
    assert update > 0
    rel_split = float((ddp - _flat(split["params"])).norm() / update)
    rel_single = float((ddp - single).norm() / update)
    print(
        f"\n{stage}: {steps} steps, global batch {2 * b}; wall time 2 processes {t_ddp:.1f} s, "
        f"1 process {t_one:.1f} s (split loss {t_split:.1f} s); |ddp - one| / |update| = "
        f"{rel_single:.3g}, against the split loss {rel_split:.3g}; max |ddp - one| = "
        f"{float((ddp - single).abs().max()):.3g}"
    )
    assert rel_split < SPLIT_TOL
    assert rel_single < single_tol


@pytest.mark.slow
def test_torchrun_ranks_share_nvp_run_dir(store, tmp_path):
    """The README's torchrun launch: ranks started by torchrun join ``NVP_RUN_DIR``."""
    run = tmp_path / "shared-run"
    env = {**os.environ, RUN_DIR_ENV: str(run)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "-m",
        "nvp.cli",
        "train-renderer",
        str(store),
        "--config",
        str(CONF_DIR / "render" / "tiny.yaml"),
        f"out={tmp_path / 'out'}",
        "trainer.strategy=ddp",
        "trainer.devices=2",
        "trainer.accelerator=cpu",
        "trainer.max_steps=2",
        "data.batch_size=1",
        "data.global_batch_size=2",
    ]
    r = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    assert not (tmp_path / "out").exists()  # no rank made a run directory of its own
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 2 and (run / "config.yaml").is_file()
    assert (r.stdout + r.stderr).count("1 per device x 2 devices x 1 nodes = 2 global") == 1


# ------------------------------------------------------------------------- random crops


def test_crops_differ_per_rank_and_repeat(store):
    """Crops drawn from (seed, epoch, position): the ranks' shares of one epoch get the crops
    the one-process run gets for the same items, so they differ between ranks; a second draw
    of the same epoch (a rerun, a resume) repeats them, and the next epoch draws new ones."""
    from nvp.render.data import RendererFrames

    ds = RendererFrames(store, np.arange(12), crop=32, seed=5)

    def epoch(world: int, rank: int, e: int = 0) -> list[tuple[int, int, int]]:
        sampler = shard_for(EpochPermutation(len(ds), seed=5, keys=True), _Trainer(world, rank))
        sampler.set_epoch(e)
        return [(k.index, *ds[k]["crop_xy"].tolist()) for k in sampler]

    r0, r1, one = epoch(2, 0), epoch(2, 1), epoch(1, 0)
    assert {i for i, *_ in r0}.isdisjoint({i for i, *_ in r1})
    assert sorted(r0 + r1) == sorted(one)  # each item cropped as in the one-process run
    assert len({tuple(c) for _, *c in r0 + r1}) > 6  # not one position repeated
    assert epoch(2, 0) == r0 and epoch(2, 1) == r1  # rerun: the same crops
    assert epoch(2, 0, e=1) != r0


def test_ddp_ranks_draw_different_crops(store, tmp_path):
    """Two CPU processes (gloo) with ``data.crop > 0``: each rank crops its own items at its
    own positions, and a rerun repeats every crop."""
    common = ["trainer.max_steps=2", "data.crop=48", "trainer.strategy=ddp", "trainer.devices=2"]
    for d in ("a", "b"):
        _launch("render", store, tmp_path / d, tmp_path / "out", *common)
    runs = [[torch.load(tmp_path / d / f"rank{r}.pt") for r in (0, 1)] for d in ("a", "b")]
    (a0, a1), (b0, b1) = runs
    assert len(a0["crops"]) == 2 and all(len(c) == 2 for c in a0["crops"] + a1["crops"])
    assert a0["crops"] != a1["crops"]  # different crops per rank
    assert (a0["crops"], a1["crops"]) == (b0["crops"], b1["crops"])  # and the same on a rerun
    assert (a0["items"], a1["items"]) == (b0["items"], b1["items"])
