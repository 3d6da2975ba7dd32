"""The stages of nvp, one typed object each: the table everything else runs them through.

A :class:`Stage` holds what used to be spread over the command line, the sweep engine, the
ablation script and the training modules: its config schema and default config file, the
function that runs it, its inputs, the validation metric its best checkpoint is chosen by,
the metrics it reports and the W&B tags derived from its config::

    from nvp.stages import STAGES

    stage = STAGES["train-renderer"]
    cfg = stage.config("conf/experiment/render_dilated.yaml", cli=["trainer.max_steps=10"])
    run_dir = stage.run(cfg, store="data/lieu.zarr")

The ``nvp`` command, ``nvp demo``, sweeps, ablations, experiments and benchmarks call
stages; none of them goes through the command line's parser. This module imports no
stage code at import time (schemas and runners are named ``"module:attribute"`` and
imported on use), so any module may import it without cycles.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

#: A tag rule: a format string for the value (``"conv:{}"``) or a function of the value
#: returning the tag or None (see :func:`nvp.training.config_tags`).
TagRule = str | Callable[[Any], str | None]


def _resolve(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class Metric:
    """A validation metric a stage logs (``logs/metrics.csv``) and reports."""

    key: str
    """Logged name, e.g. ``val/psnr``."""
    label: str
    """Name in tables, e.g. ``PSNR (dB)``."""
    higher_is_better: bool
    fmt: str = ".3f"
    """Format of the value in tables."""

    @property
    def mode(self) -> str:
        """``max`` or ``min``: how Lightning's checkpointing compares values."""
        return "max" if self.higher_is_better else "min"


@dataclass(frozen=True)
class Stage:
    """One step of the method: how to configure it and how to run it.

    Args:
        name: the ``nvp`` subcommand (``train-renderer``).
        summary: one line for help texts.
        runner: ``"module:function"`` called as ``function(cfg=..., **inputs)`` (``cfg`` left
            out for stages without a schema); returns the stage's result.
        inputs: the runner's input arguments besides ``cfg`` (paths, in CLI order).
        schema: ``"module:Class"`` of the config dataclass, or None (no settings).
        default_config: the YAML layer under ``conf/`` every run starts from.
        tiny_config: the smoke-test layer (a few steps at tiny sizes, the same code paths).
        monitor: the metric the best checkpoint is chosen by (training stages).
        metrics: the validation metrics the stage logs, for tables (monitor included).
        tag: the W&B tag of every run of the stage.
        tag_rules: W&B tags from the config's ablation axes (``nvp.training.config_tags``).
        ablation_prefix: the prefix of the stage's layers in ``conf/experiment/``.
    """

    name: str
    summary: str
    runner: str
    inputs: tuple[str, ...] = ()
    schema: str | None = None
    default_config: str | None = None
    tiny_config: str | None = None
    monitor: Metric | None = None
    metrics: tuple[Metric, ...] = ()
    tag: str = ""
    tag_rules: Mapping[str, TagRule] = field(default_factory=dict)
    ablation_prefix: str = ""

    @property
    def schema_class(self) -> type | None:
        return _resolve(self.schema) if self.schema else None

    def config(
        self,
        *yaml_files: str | Path,
        overrides: Mapping[str, Any] | None = None,
        cli: list[str] | tuple[str, ...] = (),
        default: bool = True,
    ) -> DictConfig:
        """The stage's resolved config: schema <- ``default_config`` (unless ``default`` is
        false) <- ``yaml_files`` <- ``overrides`` <- ``cli`` (``key=value``), checked (see
        :func:`nvp.config.load`; a bad value raises :class:`~nvp.errors.ConfigError`)."""
        from nvp.config import load, to_object

        if self.schema is None:
            raise TypeError(f"stage {self.name} has no settings")
        files = ([self.default_config] if default and self.default_config else []) + [*yaml_files]
        cfg = load(self.schema_class, *files, overrides=overrides, cli=list(cli))
        to_object(cfg)  # the dataclasses' own checks (__post_init__)
        return cfg

    def run(self, cfg: DictConfig | None = None, /, **inputs: Any) -> Any:
        """Run the stage (``cfg`` from :meth:`config`; the default config when None)."""
        fn = _resolve(self.runner)
        if self.schema is None:
            return fn(**inputs)
        return fn(cfg=self.config() if cfg is None else cfg, **inputs)


_A2E_MOUTH = Metric("val/vertex_rms_mouth_mm", "mouth RMS (mm)", False)
_PSNR = Metric("val/psnr", "PSNR (dB)", True, ".2f")

#: Every stage, by ``nvp`` subcommand name.
STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage(
            "preprocess",
            "videos -> sequence stores",
            "nvp.data.preprocess:run_preprocess",
            inputs=("inputs", "out"),
            schema="nvp.config:PreprocessConfig",
            default_config="preprocess/default.yaml",
        ),
        Stage(
            "build-face-model",
            "learn the expression basis over a dataset and refit its stores",
            "nvp.data.preprocess:build_face_model",
            inputs=("dataset",),
            schema="nvp.config:FaceModelConfig",
            default_config="face_model/default.yaml",
        ),
        Stage(
            "train-a2e",
            "train the generalized Audio2ExpressionNet",
            "nvp.a2e.train:train_a2e",
            inputs=("dataset",),
            schema="nvp.a2e.config:A2EConfig",
            default_config="a2e/default.yaml",
            tiny_config="a2e/tiny.yaml",
            monitor=_A2E_MOUTH,
            metrics=(
                Metric("val/vertex_rms_mm", "vertex RMS (mm)", False),
                _A2E_MOUTH,
                Metric("val/mouth_opening_r", "mouth-opening r", True),
            ),
            tag="a2e",
            tag_rules={
                "net.temporal_filter": lambda v: "filter" if v else "no-filter",
                "loss.space": "loss:{}",
                "loss.temporal_weight": lambda v: None if v else "no-temporal-loss",
                "loss.mouth_factor": lambda v: "no-mouth-weight" if v == 1 else None,
            },
            ablation_prefix="a2e",
        ),
        Stage(
            "fit-target",
            "closed-form person-specific mapping of a target",
            "nvp.a2e.target:fit_target_file",
            inputs=("checkpoint", "store", "out"),
            schema="nvp.a2e.config:FitTargetConfig",
        ),
        Stage(
            "train-renderer",
            "train a target's neural texture and renderer",
            "nvp.render.train:train_renderer",
            inputs=("store",),
            schema="nvp.render.config:RenderConfig",
            default_config="render/cpu.yaml",
            tiny_config="render/tiny.yaml",
            monitor=_PSNR,
            metrics=(
                _PSNR,
                Metric("val/psnr_face", "face PSNR (dB)", True, ".2f"),
                Metric("val/psnr_mouth", "mouth PSNR (dB)", True, ".2f"),
                Metric("val/sharpness", "face sharpness", True, ".2f"),
                Metric("val/colour_l2", "colour l2", False, ".4f"),
                Metric("val/colour_l2_face", "face colour l2", False, ".4f"),
                Metric("val/ssim", "SSIM", True, ".4f"),
            ),
            tag="renderer",
            tag_rules={
                "renderer.conv": "conv:{}",
                "renderer.norm": "norm:{}",
                "blend": lambda v: None if v else "no-blend",
                "loss.vgg_weight": lambda v: None if v else "no-vgg",
            },
            ablation_prefix="render",
        ),
        Stage(
            "make-target",
            "bundle a target: store + A2E checkpoint + mapping + renderer",
            "nvp.reenact.target:make_target",
            inputs=("out", "store", "a2e", "renderer", "mapping", "name"),
        ),
        Stage(
            "reenact",
            "audio file -> mp4 of the target speaking it",
            "nvp.reenact.pipeline:reenact_target",
            inputs=("target", "audio", "out"),
            schema="nvp.reenact.config:ReenactConfig",
        ),
        Stage(
            "say",
            "text -> speech (TTS) -> mp4 of the target speaking it",
            "nvp.reenact.tts:say",
            inputs=("target", "text", "out", "keep_wav"),
            schema="nvp.reenact.config:ReenactConfig",
        ),
        Stage(
            "evaluate",
            "self-reenactment metrics on held-out frames, or cross-speaker lip motion",
            "nvp.reenact.evaluate:evaluate_target",
            inputs=("target", "out"),
            schema="nvp.reenact.config:EvaluateConfig",
        ),
    )
}

#: The training stages, by the prefix of their ablation layers (``a2e``, ``render``).
TRAINING: dict[str, Stage] = {s.ablation_prefix: s for s in STAGES.values() if s.monitor}


def stage(name: str) -> Stage:
    """The stage called ``name`` (a KeyError lists the stages)."""
    try:
        return STAGES[name]
    except KeyError:
        raise KeyError(f"no stage {name!r} (stages: {', '.join(STAGES)})") from None


def parse_command(argv: list[str] | tuple[str, ...]) -> tuple[Stage, dict[str, str], list, list]:
    """Split a stage command line ``NAME [INPUT ...] [--config YAML ...] [key=value ...]``
    (what a sweep file's ``command`` runs) into the stage, its inputs (positional, in the
    order of :attr:`Stage.inputs`), its extra config layers and its overrides.

    Raises:
        ConfigError: an unknown stage, an option other than ``--config``, or more
            positional inputs than the stage takes.
    """
    from nvp.errors import ConfigError

    if not argv or argv[0] not in STAGES:
        raise ConfigError(f"not a stage command: {list(argv)[:3]} (stages: {', '.join(STAGES)})")
    st = STAGES[argv[0]]
    yaml_files: list[str] = []
    positional: list[str] = []
    overrides: list[str] = []
    rest = iter(argv[1:])
    for tok in rest:
        if tok == "--config":
            yaml_files.append(next(rest, ""))
        elif tok.startswith("--config="):
            yaml_files.append(tok.split("=", 1)[1])
        elif tok.startswith("-"):
            raise ConfigError(f"nvp {st.name}: option {tok} not supported here (use key=value)")
        elif "=" in tok and not Path(tok).exists():
            overrides.append(tok)
        else:
            positional.append(tok)
    if len(positional) > len(st.inputs):
        raise ConfigError(f"nvp {st.name} takes {len(st.inputs)} inputs, got {positional}")
    return st, dict(zip(st.inputs, positional)), yaml_files, overrides


def run_command(argv: list[str] | tuple[str, ...]) -> Any:
    """Run a stage command line (see :func:`parse_command`) in this process; returns the
    stage's result."""
    st, inputs, yaml_files, overrides = parse_command(argv)
    cfg = st.config(*yaml_files, cli=overrides) if st.schema else None
    return st.run(cfg, **inputs)


def run_stage(
    name: str,
    /,
    *yaml_files: str | Path,
    cli: list[str] | tuple[str, ...] = (),
    overrides: Mapping[str, Any] | None = None,
    **inputs: Any,
) -> Any:
    """Configure and run the stage ``name`` in one call: its default config <- ``yaml_files``
    <- ``overrides`` <- ``cli`` (``key=value``), then :meth:`Stage.run` with ``inputs``."""
    st = stage(name)
    cfg = st.config(*yaml_files, overrides=overrides, cli=cli) if st.schema else None
    return st.run(cfg, **inputs)
