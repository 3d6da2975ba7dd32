"""Shared pieces of the training entry points: the Trainer from a TrainerConfig, its loggers
(CSV always, Weights & Biases on request), resuming, the run directory."""

from __future__ import annotations

import logging
import netrc
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, Logger
from pytorch_lightning.utilities import rank_zero_only

from nvp.config import LoggerConfig, TrainerConfig, atomic_write_text, make_run_dir, to_yaml
from nvp.errors import ConfigError, InputError

log = logging.getLogger(__name__)


#: Checkpoint files of a run directory: the latest state (what ``resume=`` continues from)
#: and the best by the stage's validation metric (what a run directory stands for when it is
#: used as a model: ``make-target``, ``fit-target``, evaluation).
LAST_CKPT, BEST_CKPT = "last.ckpt", "best.ckpt"


def resolve_resume(resume: str | None) -> str | None:
    """A checkpoint path from ``resume`` (a ``.ckpt`` file, or a run directory: its
    ``checkpoints/last.ckpt``, the latest state)."""
    if not resume:
        return None
    p = Path(resume)
    if p.is_dir():
        p = p / "checkpoints" / LAST_CKPT
    if not p.is_file():
        raise InputError("no checkpoint to resume from", path=p)
    return str(p)


def run_checkpoint(path: str | Path) -> Path:
    """The model a run directory stands for: ``checkpoints/best.ckpt`` (best validation) when
    the run validated, else ``checkpoints/last.ckpt``; a file is returned as it is.

    Raises:
        InputError: a folder without either checkpoint.
    """
    p = Path(path)
    if not p.is_dir():
        return p
    for name in (BEST_CKPT, LAST_CKPT):
        if (p / "checkpoints" / name).is_file():
            return p / "checkpoints" / name
    raise InputError(f"folder holds no checkpoints/{BEST_CKPT} or {LAST_CKPT}", path=p)


def make_trainer(
    run: Path,
    t: TrainerConfig,
    callbacks: list[Callback],
    *,
    monitor: str | None,
    mode: str,
    config: Any | None = None,
    tags: Iterable[str] = (),
) -> pl.Trainer:
    """A Trainer writing into the run directory: ``checkpoints/`` (``last.ckpt``, the latest
    state, rewritten at every validation or epoch end; ``best.ckpt``, the best by ``monitor``,
    only with a monitor), ``logs/metrics.csv``, and with ``t.logger.wandb`` a W&B run (files
    in ``<run>/wandb/``).

    Two checkpoint callbacks rather than ``ModelCheckpoint(monitor=..., save_last=True)``:
    that one rewrites ``last.ckpt`` only when the monitored metric improves (Lightning
    2.6), so a resumed run would restart from the best epoch instead of the last one.

    Use it inside :func:`finish_wandb` so the W&B run ends with the training, however it ends.

    Args:
        run: the run directory.
        t: trainer settings.
        callbacks: extra callbacks (sample plots, ...).
        monitor: validation metric of the best checkpoint, or None (no validation).
        mode: ``min`` or ``max`` for ``monitor``.
        config: the resolved run config (the W&B run's config).
        tags: W&B tags derived from the config (:func:`config_tags`); ``t.logger.tags`` are added.
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
        logger=make_loggers(run, t.logger, config=config, tags=tags),
        callbacks=[*checkpoint_callbacks(run / "checkpoints", monitor, mode), *callbacks],
    )


def checkpoint_callbacks(folder: Path, monitor: str | None, mode: str) -> list[ModelCheckpoint]:
    """``last.ckpt`` (every validation / epoch end) and, with a monitor, ``best.ckpt``."""
    out = [
        ModelCheckpoint(
            dirpath=folder,
            filename=LAST_CKPT.removesuffix(".ckpt"),
            monitor=None,
            save_top_k=1,
            enable_version_counter=False,
        )
    ]
    if monitor:
        out.append(
            ModelCheckpoint(
                dirpath=folder,
                filename=BEST_CKPT.removesuffix(".ckpt"),
                monitor=monitor,
                mode=mode,
                save_top_k=1,
                enable_version_counter=False,
            )
        )
    return out


def make_loggers(
    run: Path, lc: LoggerConfig, *, config: Any | None = None, tags: Iterable[str] = ()
) -> list[Logger]:
    """The run's loggers: a CSVLogger (``<run>/logs/metrics.csv``), and a WandbLogger when
    ``lc.wandb`` is set and its mode is not ``disabled`` (:func:`wandb_logger_kwargs`)."""
    loggers: list[Logger] = [CSVLogger(save_dir=str(run), name="logs", version="")]
    kw = wandb_logger_kwargs(run, lc, config=config, tags=tags)
    if kw is not None:
        from pytorch_lightning.loggers import WandbLogger

        loggers.append(WandbLogger(**kw))
    return loggers


#: The W&B server whose credentials ``auto`` looks for (``$WANDB_BASE_URL`` overrides it).
WANDB_DEFAULT_HOST = "https://api.wandb.ai"


def wandb_api_key_configured() -> bool:
    """True when W&B credentials are configured: ``WANDB_API_KEY`` (or an identity token file,
    ``WANDB_IDENTITY_TOKEN_FILE``) or a netrc entry for the W&B host (``$NETRC``, ``~/.netrc``
    or ``~/_netrc``; the file ``wandb login`` writes). Nothing is contacted."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlsplit(os.environ.get("WANDB_BASE_URL") or WANDB_DEFAULT_HOST).netloc
    if given := os.environ.get("NETRC"):
        candidates = [Path(given).expanduser()]
    else:
        candidates = [Path("~/.netrc").expanduser(), Path("~/_netrc").expanduser()]
    for path in candidates:
        if not path.is_file():
            continue
        try:
            creds = netrc.netrc(path).authenticators(host)
        except (netrc.NetrcParseError, OSError):
            continue
        if creds and creds[2]:
            return True
    return False


def resolve_wandb_mode(mode: str) -> str:
    """The W&B mode ``online``/``offline``/``disabled`` a :class:`LoggerConfig` mode stands for:
    ``auto`` is ``$WANDB_MODE`` when set, else online with credentials, offline without."""
    if mode != "auto":
        return mode
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    if env in ("online", "offline", "disabled"):
        return env
    if env == "dryrun":
        return "offline"
    return "online" if wandb_api_key_configured() else "offline"


def wandb_logger_kwargs(
    run: Path, lc: LoggerConfig, *, config: Any | None = None, tags: Iterable[str] = ()
) -> dict[str, Any] | None:
    """Keyword arguments of the run's WandbLogger, or None when W&B is off (``lc.wandb`` false
    or mode ``disabled``).

    The run is named after the run directory, writes into ``<run>/wandb/``, gets the resolved
    config as its config and the tags ``tags`` (derived, when ``lc.auto_tags``) + ``lc.tags``.
    """
    if not lc.wandb:
        return None
    mode = resolve_wandb_mode(lc.wandb_mode)
    if mode == "disabled":
        return None
    if isinstance(config, DictConfig):
        config = OmegaConf.to_container(config, resolve=True)
    elif config is not None and not isinstance(config, Mapping):
        config = OmegaConf.to_container(OmegaConf.structured(config), resolve=True)
    all_tags = [*(tags if lc.auto_tags else ()), *lc.tags]
    # W&B tags are at most 64 characters; duplicates are dropped, order kept.
    all_tags = list(dict.fromkeys(str(x)[:64] for x in all_tags if str(x)))
    return {
        "name": lc.wandb_name or run.name,
        "save_dir": str(run),
        "project": lc.wandb_project,
        "entity": lc.wandb_entity,
        "group": lc.group,
        "tags": all_tags,
        "mode": mode,
        "config": dict(config) if config else None,
        "log_model": lc.wandb_log_model,
    }


#: A tag rule: a format string for the value (``"conv:{}"``) or a function of the value
#: returning the tag or None (no tag).
TagRule = str | Callable[[Any], str | None]


def config_tags(cfg: Any, rules: Mapping[str, TagRule]) -> list[str]:
    """Tags from a config's ablation axes: one per dotted key of ``rules`` present in ``cfg``.

    E.g. the rules ``{"renderer.conv": "conv:{}", "blend": lambda v: None if v else
    "no-blend"}`` give ``["conv:strided"]`` for a strided renderer with blending.
    """
    if not isinstance(cfg, DictConfig):
        cfg = OmegaConf.structured(cfg)
    missing = object()
    out = []
    for key, rule in rules.items():
        value = OmegaConf.select(cfg, key, default=missing)
        if value is missing:
            continue
        tag = rule.format(value) if isinstance(rule, str) else rule(value)
        if tag:
            out.append(tag)
    return out


@contextmanager
def finish_wandb() -> Iterator[None]:
    """End the W&B run that the enclosed code started with ``wandb.finish()``, however the code
    exits: exit code 0 on success, 1 on an exception, 255 on KeyboardInterrupt (Lightning turns
    a Ctrl-C into ``SystemExit(1)``, which counts as a failure too).

    A run that was already active when the block began (a notebook's, a sweep agent's function)
    is left alone. Without a WandbLogger nothing happens (wandb is not even imported).
    """
    before = _active_wandb_run()
    code = 0
    try:
        yield
    except KeyboardInterrupt:
        code = 255
        raise
    except SystemExit as exc:
        code = 0 if exc.code in (None, 0) else 1
        raise
    except BaseException:
        code = 1
        raise
    finally:
        active = _active_wandb_run()
        if active is not None and active is not before:
            try:
                active.finish(exit_code=code)
            except Exception as exc:  # never hide the training's own outcome
                log.warning("wandb.finish() failed: %s", exc)


def _active_wandb_run():
    wandb = sys.modules.get("wandb")
    return getattr(wandb, "run", None) if wandb is not None else None


#: Environment variable naming the run directory every process of a distributed run shares.
RUN_DIR_ENV = "NVP_RUN_DIR"


@contextmanager
def shared_run_dir(root: str | Path, name: str, cfg) -> Iterator[Path]:
    """The run directory of a training run, the same in every process of a DDP job.

    The first process creates a fresh directory and exports it as ``NVP_RUN_DIR`` (and removes
    it again when the run fails before writing anything but its config); the worker
    processes Lightning's launcher starts inherit the variable and use that directory
    instead of creating their own. With an external launcher (torchrun, SLURM) set
    ``NVP_RUN_DIR`` to one path for all ranks. The variable is removed again when the run
    ends (if this process set it), so later runs in the same process get fresh directories.
    """
    given = os.environ.get(RUN_DIR_ENV)
    if given:
        run = Path(given)
        run.mkdir(parents=True, exist_ok=True)
        if not (run / "config.yaml").exists() and all(
            int(os.environ.get(v, "0")) == 0 for v in ("RANK", "LOCAL_RANK", "SLURM_PROCID")
        ):
            atomic_write_text(run / "config.yaml", to_yaml(cfg))
        yield run
        return
    run = make_run_dir(root, name, cfg, runs_subdir=False)
    os.environ[RUN_DIR_ENV] = str(run)
    try:
        yield run
    except BaseException:
        remove_if_unused(run)
        raise
    finally:
        os.environ.pop(RUN_DIR_ENV, None)


def remove_if_unused(run: Path) -> bool:
    """Delete a run directory that a failed start left with nothing but its ``config.yaml``
    (and empty folders), so that a wrong setting does not leave empty runs behind; a run that
    wrote anything else (a checkpoint, a log line) is kept. Returns whether it was removed."""
    files = [f for f in run.rglob("*") if f.is_file()]
    if any(f != run / "config.yaml" for f in files):
        return False
    shutil.rmtree(run, ignore_errors=True)
    log.info("removed the unused run directory %s", run)
    return True


def check_batch_size(trainer: pl.Trainer, batch_size: int, global_batch_size: int = 0) -> int:
    """The global batch of a run: ``batch_size`` (per device) x the trainer's world size
    (devices x nodes, as Lightning resolved them when it built the strategy), logged on rank
    zero. Learning rates are not rescaled with it.

    Call it after :func:`make_trainer` and before ``fit``, so a wrong setting stops the run
    before Lightning's launcher starts the other processes.

    Args:
        trainer: the run's trainer.
        batch_size: ``data.batch_size``, samples per step and device.
        global_batch_size: ``data.global_batch_size``, the intended global batch (0 = unset).

    Raises:
        ConfigError: ``global_batch_size`` is set and differs from the global batch.
    """
    world = int(trainer.world_size)
    total = batch_size * world
    if global_batch_size < 0:
        raise ConfigError(
            f"data.global_batch_size must be >= 0 (0 = unset), got {global_batch_size}"
        )
    if global_batch_size and global_batch_size != total:
        if global_batch_size % world == 0:
            hint = f"; set data.batch_size={global_batch_size // world}"
        else:
            hint = f"; {global_batch_size} is not divisible by {world} processes"
        raise ConfigError(
            f"data.global_batch_size={global_batch_size} does not match data.batch_size="
            f"{batch_size} per device x {world} processes ({trainer.num_devices} devices x "
            f"{trainer.num_nodes} nodes) = {total}{hint}"
        )
    if rank_zero_only.rank == 0:
        log.info(
            "batch size: %d per device x %d devices x %d nodes = %d global (learning rates are "
            "not rescaled)",
            batch_size,
            trainer.num_devices,
            trainer.num_nodes,
            total,
        )
    return total
