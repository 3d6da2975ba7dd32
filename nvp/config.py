"""Typed configuration: dataclass schemas merged with YAML files and command-line overrides.

One function, :func:`load`, builds every configuration in nvp::

    schema (dataclass defaults) <- YAML files (in order) <- overrides (dict) <- CLI dotlist

The result is an OmegaConf object in *struct mode*: a key that the schema does
not define is an error that names the key (a misspelt ``crop.szie=512`` fails
instead of being ignored), and values are type-checked against the schema
(``Literal`` fields accept only their listed values).

Every run writes into a fresh run directory (:func:`make_run_dir`) holding its
resolved ``config.yaml``; nothing is overwritten.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from nvp.audio.config import AudioFeatureConfig
from nvp.errors import ConfigError

#: Folder of the YAML configurations shipped with nvp (``conf/`` at the repository root).
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"

#: The 9 stable landmarks (eye corners, nose bridge) the rigid pose is fitted on; fitting on all
#: 468 points or on the forehead lets mouth opening leak into pitch and scale (measured r ~ 0.9).
STABLE_POINTS: tuple[int, ...] = (33, 133, 362, 263, 168, 6, 197, 195, 5)


@dataclass
class CropConfig:
    """Square face crop taken from every frame (the space all later stages work in)."""

    size: int = 256
    """Output side in pixels (256 for tests and CPU work, 512 as in the paper)."""
    scale: float = 1.8
    """Crop side as a multiple of the face size (the larger side of the landmark bounding box)."""
    mode: Literal["fixed", "track"] = "fixed"
    """``fixed``: one square for the whole clip covering the smoothed face track (a static
    background for the blending network); ``track``: a square of fixed side that follows the
    smoothed face centre per frame."""
    smooth_sigma: float = 5.0
    """Std of the Gaussian smoothing of the face track over time, in frames."""

    def __post_init__(self) -> None:
        if self.size < 8:
            raise ValueError(f"crop.size must be at least 8 px, got {self.size}")
        if self.scale <= 0:
            raise ValueError(f"crop.scale must be > 0, got {self.scale}")
        if self.smooth_sigma < 0:
            raise ValueError(f"crop.smooth_sigma must be >= 0, got {self.smooth_sigma}")


@dataclass
class LandmarkConfig:
    """MediaPipe Face Mesh settings and what to do with frames without a face."""

    refine: bool = False
    """MediaPipe's attention (iris/lip refinement) model; it jitters ~50 % more on the
    stable points, so it is off by default."""
    max_faces: int = 2
    """Faces MediaPipe may return per frame; with several, the largest is used (with a warning)."""
    min_detection_confidence: float = 0.5
    """MediaPipe face detector threshold in [0, 1]."""
    min_tracking_confidence: float = 0.5
    """MediaPipe tracking threshold in [0, 1] (tracking mode re-detects below it)."""
    max_gap: int = 5
    """Longest run of frames without a face that is filled by linear interpolation (flagged
    ``interpolated``); longer runs are flagged ``missing`` and held at the nearest face."""
    min_face_fraction: float = 0.8
    """A clip where fewer frames than this fraction have a detected face is rejected."""


@dataclass
class TrackingConfig:
    """Rigid pose, identity and expression fitting against the face model."""

    pose_points: list[int] = field(default_factory=lambda: list(STABLE_POINTS))
    """Landmark indices the per-frame similarity (scale, rotation, translation) is fitted on."""
    pose_smooth_sigma: float = 1.0
    """Std of the Gaussian smoothing of the pose over time, in frames (0 = off)."""
    identity_closed_fraction: float = 0.2
    """The per-sequence identity is the mean aligned shape of this fraction of frames with the
    most closed mouth (the plain mean keeps the mouth 2-9 % of the eye distance open)."""


@dataclass
class RasterConfig:
    """Rasterization of the UV map and the face / mouth masks."""

    backend: Literal["torch", "pytorch3d"] = "torch"
    """``torch``: the built-in batched z-buffer (CPU and GPU); ``pytorch3d`` where installed."""
    batch: int = 32
    """Frames rasterized per call."""

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise ValueError(f"raster.batch must be >= 1, got {self.batch}")

    device: str = "cpu"
    """Torch device for rasterization (``cpu``, ``cuda``, ``cuda:1``)."""


@dataclass
class SplitConfig:
    """Time-based split of every sequence: train first, then validation, then test."""

    train: float = 0.8
    """Fraction of each sequence's frames used for training (the first ones)."""
    val: float = 0.1
    """Fraction used for validation (after the training frames)."""
    test: float = 0.1
    """Fraction held out for testing (the last frames)."""


@dataclass
class StoreConfig:
    """Layout of the zarr v3 sequence stores."""

    chunk_frames: int = 1
    """Frames per chunk of the image arrays (1 = one frame per random read)."""
    shard_frames: int = 64
    """Frames per shard file (zarr v3 sharding keeps the file count low)."""
    clevel: int = 3
    """zstd compression level."""

    def __post_init__(self) -> None:
        if self.chunk_frames < 1 or self.shard_frames < 1:
            raise ValueError(
                f"store.chunk_frames and store.shard_frames must be >= 1, got "
                f"{self.chunk_frames} and {self.shard_frames}"
            )


@dataclass
class PreprocessConfig:
    """``nvp preprocess``: talking-head videos to sequence stores."""

    fps: float = 25.0
    """Frame rate the video is resampled to (by timestamps), frames per second."""
    sample_rate: int = 16000
    """Audio sample rate of the stores and the feature extractors, Hz (mono)."""
    workers: int = 1
    """Videos processed in parallel (one process each)."""
    face_model: str | None = None
    """Face model ``.npz``; ``None`` = the dataset's ``face_model.npz`` when it exists, else the
    built-in template (no expression basis until ``nvp build-face-model`` runs)."""
    min_seconds: float = 1.0
    """Clips shorter than this are rejected (they cannot fill a training sample)."""
    crop: CropConfig = field(default_factory=CropConfig)
    landmarks: LandmarkConfig = field(default_factory=LandmarkConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    audio: AudioFeatureConfig = field(default_factory=AudioFeatureConfig)
    raster: RasterConfig = field(default_factory=RasterConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    lock_timeout: float = -1
    """Seconds to wait when another process is writing the same store (< 0: wait as long as
    it takes, 0: stop at once); the message names the other process."""

    def __post_init__(self) -> None:
        if self.fps <= 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if self.sample_rate < 8000:
            raise ValueError(f"sample_rate must be at least 8000 Hz, got {self.sample_rate}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.min_seconds < 0:
            raise ValueError(f"min_seconds must be >= 0, got {self.min_seconds}")


@dataclass
class LoggerConfig:
    """Loggers of a training run. ``logs/metrics.csv`` (Lightning's CSVLogger) is always written;
    Weights & Biases is opt-in (``trainer.logger.wandb=true``)."""

    wandb: bool = False
    """Also log to Weights & Biases (metrics, sample images, the resolved config). Off by
    default: nothing leaves the machine and no W&B service process starts unless asked."""
    wandb_mode: Literal["auto", "online", "offline", "disabled"] = "auto"
    """``auto``: ``$WANDB_MODE`` when set, else ``online`` when a W&B API key is configured
    (``WANDB_API_KEY`` or a netrc entry for the W&B host) and ``offline`` otherwise (sync later
    with ``wandb sync <run>/wandb/offline-run-*``); ``disabled``: no W&B logger at all."""
    wandb_project: str = "nvp"
    """W&B project."""
    wandb_entity: str | None = None
    """W&B entity (user or team); None = the account's default."""
    wandb_name: str | None = None
    """W&B run name; None = the run directory's name."""
    group: str | None = None
    """W&B run group (e.g. one ablation study)."""
    tags: list[str] = field(default_factory=list)
    """Extra W&B tags, added to the derived ones."""
    auto_tags: bool = True
    """Add tags derived from the config's ablation axes (``conv:strided``, ``no-filter``,
    ``audio:mel``, ...)."""
    wandb_log_model: bool = False
    """Upload the checkpoints as W&B artifacts at the end of training."""


@dataclass
class TrainerConfig:
    """The Lightning Trainer settings that experiments change."""

    max_epochs: int = 50
    """Epochs (paper: 50)."""
    accelerator: str = "auto"
    """``cpu``, ``gpu``, ``auto``."""
    devices: str = "auto"
    """Number of devices or ``auto``."""
    num_nodes: int = 1
    """Nodes (multi-node DDP through Lightning's launchers)."""
    strategy: str = "auto"
    """``auto``, ``ddp``, ``ddp_spawn``, ..."""
    precision: str = "32-true"
    """``32-true``, ``bf16-mixed``, ..."""
    max_steps: int = -1
    """Stop after this many optimisation steps (-1 = no limit)."""
    max_time: str | None = None
    """Stop after this wall time, ``DD:HH:MM:SS`` (None = no limit)."""
    limit_train_batches: float = 1.0
    """Fraction (<= 1.0) or number (> 1) of training batches per epoch."""
    limit_val_batches: float = 1.0
    """Fraction or number of validation batches."""
    val_check_interval: float = 1.0
    """Validate every this fraction of an epoch."""
    log_every_n_steps: int = 10
    """Logging interval in steps."""
    deterministic: bool = False
    """Deterministic algorithms (slower)."""
    enable_progress_bar: bool = True
    """Progress bar with it/s and ETA."""
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    """Loggers besides ``logs/metrics.csv``: Weights & Biases (``trainer.logger.wandb=true``)."""


@dataclass
class FaceModelConfig:
    """``nvp build-face-model``: the generic expression basis learned over a corpus."""

    n_components: int = 76
    """Requested basis size K (the paper's 76); fewer are kept when the data cannot support
    them (rank, or components below ``min_relative_std``)."""
    min_relative_std: float = 1e-4
    """Components whose std is below this fraction of the first component's are dropped."""
    min_vertex_std_mm: float = 0.09
    """Components that move no vertex by more than this std (mm) are dropped: they model the
    detector's per-frame noise (~0.1 % of the eye distance, 0.09 mm), not expressions."""
    iterations: int = 3
    """Generalized-Procrustes iterations for the corpus mean shape."""
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    raster: RasterConfig = field(default_factory=RasterConfig)


T = TypeVar("T")


def _yaml(path: str | Path) -> DictConfig:
    p = Path(path)
    if not p.is_file():
        raise ConfigError("config file not found", path=p)
    try:
        cfg = OmegaConf.load(p)
    except Exception as exc:  # yaml.YAMLError and friends
        raise ConfigError(f"not a valid YAML file: {exc}", path=p) from exc
    if not isinstance(cfg, DictConfig):
        raise ConfigError("a config file must hold a mapping at the top level", path=p)
    return cfg


def _explain(exc: OmegaConfBaseException, source: str) -> ConfigError:
    key = getattr(exc, "full_key", None)
    msg = str(exc).splitlines()[0]
    if "not in struct" in msg or ("Key '" in msg and "not in" in msg):
        return ConfigError(
            f"unknown config key '{key}' (from {source}); see --dry-run for all keys"
        )
    return ConfigError(f"invalid value for '{key}' (from {source}): {msg}")


def load(
    schema: type[T] | T,
    *yaml_files: str | Path,
    overrides: Mapping[str, Any] | None = None,
    cli: Sequence[str] = (),
) -> DictConfig:
    """Merge a dataclass schema with YAML files, a dict of overrides and a CLI dotlist.

    Args:
        schema: a config dataclass (or instance) defining every key, its type and default.
        yaml_files: YAML files merged in order (later wins); paths relative to the working
            directory, or names relative to :data:`CONF_DIR` (``"preprocess/default.yaml"``).
        overrides: nested mapping merged after the files (used by code and tests).
        cli: ``key=value`` strings (``crop.size=512``) merged last.

    Returns:
        The resolved config, read-only keys checked, in struct mode.

    Raises:
        ConfigError: an unknown key (named), a value of the wrong type, a missing or invalid file.
    """
    cfg = OmegaConf.structured(schema)
    OmegaConf.set_struct(cfg, True)
    _open_dicts(cfg)
    layers: list[tuple[str, Any]] = []
    for f in yaml_files:
        p = Path(f)
        if not p.is_file() and (CONF_DIR / p).is_file():
            p = CONF_DIR / p
        layers.append((str(p), _yaml(p)))
    if overrides:
        layers.append(("overrides", OmegaConf.create(dict(overrides))))
    bad = [a for a in cli if "=" not in a or a.startswith("=")]
    if bad:
        raise ConfigError(f"config overrides must look like key=value, got {bad[0]!r}")
    if cli:
        try:
            layers.append(("command line", OmegaConf.from_dotlist(list(cli))))
        except OmegaConfBaseException as exc:
            raise ConfigError(f"cannot parse command-line overrides: {exc}") from exc
    for source, layer in layers:
        _check_keys(cfg, layer, source)
        try:
            cfg = OmegaConf.merge(cfg, layer)
        except OmegaConfBaseException as exc:
            raise _explain(exc, source) from exc
        _open_dicts(cfg)
    OmegaConf.set_struct(cfg, True)
    _open_dicts(cfg)
    return cfg


def _open_dicts(cfg: DictConfig) -> None:
    """Let the free-form ``dict`` fields of a struct config (e.g. ``audio.options``) take new
    keys; every other node stays closed."""
    for key in cfg:
        child = cfg._get_node(key)
        if isinstance(child, DictConfig):
            if OmegaConf.get_type(child) is dict:
                OmegaConf.set_struct(child, False)
            else:
                _open_dicts(child)


def _check_keys(cfg: DictConfig, layer: DictConfig, source: str) -> None:
    """Raise a ConfigError naming the full dotted key of the first key the schema lacks."""
    missing = object()
    for key in dotlist_keys(layer):
        if _in_open_dict(cfg, key):
            continue  # the options of code named by reference: checked by that code's schema
        if OmegaConf.select(cfg, key, default=missing) is missing:
            parent = key.rsplit(".", 1)[0] if "." in key else ""
            node = OmegaConf.select(cfg, parent, default=None) if parent else cfg
            known = sorted(node.keys()) if isinstance(node, DictConfig) else []
            hint = f"; keys here: {', '.join(map(str, known))}" if known else ""
            raise ConfigError(f"unknown config key '{key}' (from {source}){hint}")


def _in_open_dict(cfg: DictConfig, key: str) -> bool:
    """Whether ``key`` lies inside a free-form ``dict`` field of the schema (e.g.
    ``audio.options``), whose keys the schema does not list."""
    parts = key.split(".")
    for i in range(len(parts) - 1, 0, -1):
        node = OmegaConf.select(cfg, ".".join(parts[:i]), default=None)
        if isinstance(node, DictConfig):
            return OmegaConf.get_type(node) is dict
    return False


def to_object(cfg: DictConfig) -> Any:
    """The typed dataclass instance behind a loaded config (validates ``__post_init__``)."""
    try:
        return OmegaConf.to_object(cfg)
    except (OmegaConfBaseException, ValueError) as exc:
        raise ConfigError(f"invalid configuration: {exc}") from exc


def to_yaml(cfg: Any) -> str:
    """YAML text of a config (DictConfig or dataclass instance)."""
    if not isinstance(cfg, DictConfig):
        cfg = OmegaConf.structured(cfg)
    return OmegaConf.to_yaml(cfg, resolve=True)


def make_run_dir(
    root: str | Path, kind: str, cfg: Any | None = None, *, runs_subdir: bool = True
) -> Path:
    """Create a fresh run directory ``root/runs/<kind>-<UTC time>[-n]`` and write ``config.yaml``.

    A run directory is never reused: a suffix is added when the name exists.

    Args:
        root: parent folder (a dataset, or an output folder).
        kind: the job (``preprocess``, ``build-face-model``, ...).
        cfg: the resolved config, written as ``config.yaml``.
        runs_subdir: put run directories in ``root/runs/`` (False: directly in ``root``).
    """
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S")
    base = Path(root) / "runs" if runs_subdir else Path(root)
    base.mkdir(parents=True, exist_ok=True)
    for n in range(1000):
        run = base / (f"{kind}-{stamp}" + (f"-{n}" if n else ""))
        try:
            run.mkdir()
        except FileExistsError:
            continue
        if cfg is not None:
            atomic_write_text(run / "config.yaml", to_yaml(cfg))
        return run
    raise RuntimeError(f"could not create a fresh run directory under {base}")


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically (temp file in the same folder, then rename)."""
    return atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write a file atomically: a temp file in the same folder, then ``os.replace`` (a reader
    sees the old file or the new one, never a half-written one)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def dotlist_keys(cfg: DictConfig, prefix: str = "") -> Iterable[str]:
    """All leaf keys of a config as dotted names (for help texts)."""
    for k, v in cfg.items():
        name = f"{prefix}{k}"
        if isinstance(v, DictConfig):
            yield from dotlist_keys(v, name + ".")
        else:
            yield name
