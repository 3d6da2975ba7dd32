"""Ablation study: a baseline and named variants trained at one budget, compared in one table.

    python experiments/ablate.py NAME... --data DATASET_OR_STORE [--stage a2e|render]
        [--dataset VARIANT=PATH ...] [--base FILE ...] [--set key=value ...]
        [--seeds 0 1] [--out DIR] [--report-only] [--force]

Variants:

* the **baseline**: ``--base`` (default ``conf/a2e/default.yaml`` for ``a2e``,
  ``conf/render/cpu.yaml`` for ``render``, as the ``nvp train-*`` commands) on ``--data``;
* one per **NAME**: a config layer ``conf/experiment/NAME.yaml`` (or a path to a YAML file)
  put on top of the baseline, same data. The stage follows the name's prefix (``a2e_*``,
  ``render_*``); without names it follows ``--data`` (a ``.zarr`` store: ``render``);
* one per ``--dataset VARIANT=PATH``: the baseline config on other data. This is the axis of
  choices made at preprocessing time, above all the audio feature type (``audio.name``): the
  features live in the stores, so "mfcc instead of mel" is the same corpus preprocessed again::

      nvp preprocess CLIPS --out data/corpus-mel audio.name=mel
      nvp build-face-model data/corpus-mel
      for f in mfcc whisper; do
          nvp preprocess CLIPS --out data/corpus-$f audio.name=$f \\
              face_model=data/corpus-mel/face_model.npz
      done
      python experiments/ablate.py a2e_no_filter --data data/corpus-mel \\
          --dataset a2e_audio_mfcc=data/corpus-mfcc --dataset a2e_audio_whisper=data/corpus-whisper

  (sharing the baseline's face model keeps the vertex errors in the same millimetres; a
  dataset whose face model or sequences differ from the baseline's is reported.)

Every variant and seed trains with the same overrides (``--set trainer.max_time=00:01:00:00``
or ``--set trainer.max_epochs=20``: the budget), in ``OUT/runs/VARIANT/seedS/`` (a run
directory of ``nvp train-*`` plus ``done.json`` once it finished). Finished runs are not
trained again: rerunning the command (with more names or seeds) trains only what is missing;
a finished run whose config differs from the one asked now stops the command (``--force``
trains it again). Validation metrics come from each run's ``logs/metrics.csv``:

* ``final``: the last validation of the run;
* ``best``: the validation with the best checkpoint's criterion (A2E: lowest
  ``val/vertex_rms_mouth_mm``; renderer: highest ``val/psnr``), all metrics of that validation.

Written to ``OUT``: ``ablation.md`` (final and best tables: rows = variants, columns = the
stage's metrics as mean ± std over seeds with the difference to the baseline),
``ablation.csv`` (the same, one row per variant), ``ablation.png`` (bar plot of the final
metrics) and ``ablation_runs.csv`` (one row per run). They are rewritten after every run, so
a study in progress can be read at any time (``--report-only`` rebuilds them without
training).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as _dt
import json
import math
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from omegaconf import DictConfig, OmegaConf  # noqa: E402

from nvp.config import CONF_DIR, atomic_write_text, dotlist_keys, load, to_object  # noqa: E402
from nvp.errors import NvpError  # noqa: E402
from nvp.runs import RunLog  # noqa: E402
from nvp.stages import TRAINING, Metric  # noqa: E402
from nvp.training import run_checkpoint  # noqa: E402

EXPERIMENT_DIR = CONF_DIR / "experiment"
MARKER = "done.json"
BASELINE = "baseline"
#: Keys that do not change what a run learns: left out of the comparison of configs.
_IGNORED_KEYS = ("out", "name", "resume", "trainer.logger.", "trainer.enable_progress_bar")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Stage:
    """A training stage as the ablation uses it (from :data:`nvp.stages.TRAINING`)."""

    name: str
    """The prefix of its layers in ``conf/experiment/`` (``a2e``, ``render``)."""
    schema: type
    base: tuple[str, ...]
    metrics: tuple[Metric, ...]
    monitor: Metric
    """The best checkpoint's criterion (the stage's)."""
    stage: Any = None
    """The :class:`nvp.stages.Stage`."""


def _stages() -> dict[str, Stage]:
    return {
        prefix: Stage(prefix, st.schema_class, (st.default_config,), st.metrics, st.monitor, st)
        for prefix, st in TRAINING.items()
    }


@dataclass
class Variant:
    name: str
    data: Path
    layers: tuple[Path, ...] = ()
    change: str = ""
    """What differs from the baseline, as ``key=value`` (or the data)."""
    note: str = ""
    """The experiment file's header comment (first sentence)."""


@dataclass
class RunResult:
    variant: str
    seed: int
    run: Path
    seconds: float
    steps: int
    validations: int
    final: dict[str, float] = field(default_factory=dict)
    best: dict[str, float] = field(default_factory=dict)
    lips: dict[str, float] = field(default_factory=dict)
    """Lip-motion measures of the run's last checkpoint on ``--lips`` (a2e stage)."""


class AblationError(Exception):
    """A problem with the command line or a finished run (printed without a traceback)."""


# --------------------------------------------------------------------------------------------
# Variants and configs


def experiment_file(name: str) -> Path:
    """``conf/experiment/NAME.yaml``, or ``NAME`` itself when it is a YAML file."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p.resolve()
    q = EXPERIMENT_DIR / f"{name}.yaml"
    if q.is_file():
        return q
    known = ", ".join(sorted(f.stem for f in EXPERIMENT_DIR.glob("*.yaml")))
    raise AblationError(f"unknown experiment {name!r}: no {q} (known: {known})")


def stage_of(name: str) -> str | None:
    """The stage an experiment belongs to, from its name's prefix."""
    stem = Path(name).stem
    for stage in ("a2e", "render"):
        if stem.startswith(f"{stage}_"):
            return stage
    return None


def header_note(path: Path) -> str:
    """The first sentence of a YAML file's leading comment block."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    text = " ".join(lines).strip()
    text = re.sub(r"^Ablation:\s*", "", text)
    m = re.match(r"(.+?\.)(\s|$)", text)
    return m.group(1) if m else text


def layer_change(path: Path) -> str:
    """A config layer's settings as ``key=value, ...``."""
    layer = OmegaConf.load(path)
    if not isinstance(layer, DictConfig):
        raise AblationError(f"{path}: a config layer must hold a mapping")
    return ", ".join(f"{k}={OmegaConf.select(layer, k)}" for k in dotlist_keys(layer))


def describe_data(stage: str, path: Path) -> dict[str, Any]:
    """Audio features, face model and sequences of a dataset (a2e) or store (render)."""
    from nvp.data.store import SequenceStore, find_stores

    stores = [path] if stage == "render" else find_stores(path)
    if not stores:
        raise AblationError(f"no finished sequence stores in {path}")
    opened = [SequenceStore(p) for p in stores]
    a = opened[0].attrs
    return {
        "audio": (a.get("features") or {}).get("name"),
        "face_model": (a.get("face_model") or {}).get("hash"),
        "sequences": sorted(s.name for s in opened),
    }


def make_variants(
    stage: str, names: Sequence[str], data: Path, datasets: Sequence[str]
) -> list[Variant]:
    """The baseline, then one variant per experiment name, then one per ``NAME=PATH``."""
    base_info = describe_data(stage, data)
    audio = f" (audio {base_info['audio']})" if base_info["audio"] else ""
    variants = [Variant(BASELINE, data, change=f"data={data}{audio}", note="the base config")]
    for name in names:
        path = experiment_file(name)
        variants.append(
            Variant(path.stem, data, (path,), change=layer_change(path), note=header_note(path))
        )
    for spec in datasets:
        name, sep, p = spec.partition("=")
        if not sep or not name or not p:
            raise AblationError(f"--dataset takes VARIANT=PATH, got {spec!r}")
        dpath = Path(p)
        if not dpath.exists():
            raise AblationError(f"--dataset {name}: {dpath} does not exist")
        info = describe_data(stage, dpath)
        notes = [
            f"audio features {info['audio']} instead of {base_info['audio']}"
            if info["audio"] != base_info["audio"]
            else f"audio features {info['audio']} as the baseline"
        ]
        if info["face_model"] != base_info["face_model"]:
            notes.append(
                f"WARNING: face model {info['face_model']} differs from the baseline's "
                f"{base_info['face_model']} (vertex errors are in other units; preprocess with "
                f"face_model=<baseline data>/face_model.npz)"
            )
        if info["sequences"] != base_info["sequences"]:
            notes.append("WARNING: other sequences than the baseline's")
        audio = f" (audio {info['audio']})" if info["audio"] else ""
        variants.append(Variant(name, dpath, change=f"data={dpath}{audio}", note="; ".join(notes)))
    seen: set[str] = set()
    for v in variants:
        if not _NAME_RE.match(v.name):
            raise AblationError(f"variant name {v.name!r}: use letters, digits, '_', '.', '-'")
        if v.name in seen:
            raise AblationError(f"variant {v.name!r} given twice")
        seen.add(v.name)
    return variants


def compose(
    stage: Stage,
    base: Sequence[str],
    variant: Variant,
    sets: Sequence[str],
    seed: int,
    root: Path,
    group: str,
) -> DictConfig:
    """base files <- the variant's layer <- W&B group <- ``--set`` <- seed, out, name."""
    cfg = load(
        stage.schema,
        *base,
        *variant.layers,
        overrides={"trainer": {"logger": {"group": group}}},
        cli=list(sets),
    )
    cfg.seed = seed
    cfg.out = str(root)
    cfg.name = variant.name
    to_object(cfg)  # validates the values (``__post_init__`` checks) before anything trains
    return cfg


def flat_config(cfg: DictConfig, data: Path) -> dict[str, Any]:
    """The config as ``{dotted key: value}`` without the keys that do not change training,
    plus the data path: what a finished run is compared by."""
    out: dict[str, Any] = {"data": str(Path(data).resolve())}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
            return
        key = prefix[:-1]
        if not any(key == i or (i.endswith(".") and key.startswith(i)) for i in _IGNORED_KEYS):
            out[key] = node

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return json.loads(json.dumps(out, default=str))


# --------------------------------------------------------------------------------------------
# Training and metrics


def with_declared_metrics(stage: Stage, cfg: DictConfig | None) -> Stage:
    """The stage with the image metrics the baseline config declares besides the built-in
    ones (``metrics.<name>``, see :func:`nvp.metrics.image.extra_metrics`) as table columns;
    the direction comes from the metric class's ``higher_is_better``."""
    declared = OmegaConf.select(cfg, "metrics", default=None) if cfg is not None else None
    if not declared:
        return stage
    from nvp.metrics.image import extra_metrics

    extra = tuple(
        Metric(f"val/{name}", name, bool(getattr(m, "higher_is_better", True)), ".4f")
        for name, m in extra_metrics(OmegaConf.to_container(declared)).items()
    )
    return dataclasses.replace(stage, metrics=(*stage.metrics, *extra))


def train_variant(stage: str, data: Path, cfg: DictConfig) -> Path:
    """One training run (in this process); returns its run directory."""
    st = TRAINING[stage]
    return st.run(cfg, **{st.inputs[0]: data})


def read_metrics(path: Path, metrics: Sequence[Metric], monitor: Metric) -> dict[str, Any]:
    """Final and best validation metrics of one run's ``logs/metrics.csv``.

    ``final``: each metric's last logged value. ``best``: every metric of the validation
    whose ``monitor`` value is best (the best checkpoint's validation). Missing = NaN.
    """
    log = RunLog.read(path)
    keys = [m.key for m in metrics]
    return {
        "final": {k: log.final(k) for k in keys},
        "best": log.best(keys, monitor.key, monitor.higher_is_better),
        "steps": log.steps,
        "validations": log.validations(monitor.key),
    }


def _marker_run(root: Path) -> tuple[dict[str, Any], Path] | None:
    m = root / MARKER
    if not m.is_file():
        return None
    info = json.loads(m.read_text())
    run = root / info["run"]
    if not run.is_dir():
        print(f"  {root}: {MARKER} names {run}, which is gone: training again")
        return None
    return info, run


def config_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def run_or_resume(
    stage: Stage, variant: Variant, cfg: DictConfig, root: Path, *, force: bool, train: bool
) -> tuple[RunResult | None, bool]:
    """The result of one variant and seed: read from a finished run, else trained now
    (``train``), else None; and whether it was trained now."""
    flat = flat_config(cfg, variant.data)
    done = _marker_run(root)
    if done is not None:
        info, run = done
        diff = config_diff(info.get("config", {}), flat)
        if diff and not force:
            raise AblationError(
                f"{root} finished with another config than the one asked now:\n  "
                + "\n  ".join(diff)
                + "\nuse another --out, or --force to train it again"
            )
        if not diff:
            print(f"  {variant.name} seed {cfg.seed}: finished ({run}), not trained again")
            res = _result(stage, variant.name, int(cfg.seed), run, info.get("seconds", math.nan))
            return res, False
    if not train:
        return None, False
    print(f"  {variant.name} seed {cfg.seed}: training ({variant.change})", flush=True)
    t0 = time.perf_counter()
    run = Path(train_variant(stage.name, variant.data, cfg))
    seconds = round(time.perf_counter() - t0, 2)
    info = {
        "run": os.path.relpath(run, root),
        "variant": variant.name,
        "seed": int(cfg.seed),
        "seconds": seconds,
        "finished": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "config": flat,
    }
    atomic_write_text(root / MARKER, json.dumps(info, indent=2) + "\n")
    return _result(stage, variant.name, int(cfg.seed), run, seconds), True


def _result(stage: Stage, variant: str, seed: int, run: Path, seconds: float) -> RunResult:
    m = read_metrics(run / "logs" / "metrics.csv", stage.metrics, stage.monitor)
    if not m["validations"]:
        print(
            f"  WARNING: {run} has no validation metrics (the budget ended before the first "
            f"validation: raise it, or validate more often with trainer.val_check_interval)"
        )
    return RunResult(
        variant, seed, run, seconds, m["steps"], m["validations"], m["final"], m["best"]
    )


# --------------------------------------------------------------------------------------------
# Lip motion of A2E runs (--lips STORE --voices ...)

#: (key, label, format) of the lip-motion columns.
LIP_COLUMNS = (
    ("own.r0", "r own audio", ".2f"),
    ("own.best_lag", "lag", ".0f"),
    ("own.std_ratio", "amp. own", ".2f"),
    ("own.range_ratio", "amp. 5-95 %", ".2f"),
    ("voices.min", "amp. voices min", ".2f"),
    ("voices.mean", "amp. voices mean", ".2f"),
    ("closure.audio", "closures audio", ".0%"),
    ("closure.tracked", "closures tracked", ".0%"),
    ("gain", "fit gain", ".2f"),
    ("paper_fit.r0", "r (paper fit)", ".2f"),
    ("paper_fit.std_ratio", "amp. (paper fit)", ".2f"),
)


#: Feature windows of the voices and the target's bilabial segments, shared by the runs.
_PROBE_CACHE: dict = {}


def lip_measures(
    run: Path, store: Path, voices: Sequence[str], smooth_sigma: float = 0.0
) -> dict[str, float]:
    """Lip motion of a run's last checkpoint on ``store`` (its ``test`` split, own audio) and
    driven by ``voices`` (:func:`nvp.reenact.lips.a2e_lip_probe`), with the default target fit
    and with the paper's (no offset, no gain). Cached in ``run/lips.json`` per settings."""
    from nvp.a2e.config import FitTargetConfig
    from nvp.reenact.lips import a2e_lip_probe

    key = {
        "store": str(store.resolve()),
        "voices": list(voices),
        "smooth": smooth_sigma,
        "version": 2,
    }
    cache = run / "lips.json"
    if cache.is_file():
        old = json.loads(cache.read_text())
        if old.get("key") == key:
            return old["measures"]
    ckpt = run_checkpoint(run)  # the best validation state, as make-target uses
    res = a2e_lip_probe(ckpt, store, list(voices), smooth_sigma=smooth_sigma, cache=_PROBE_CACHE)
    paper = a2e_lip_probe(
        ckpt,
        store,
        [],
        fit=FitTargetConfig(intercept=False, gain="none"),
        smooth_sigma=0.0,
        cache=_PROBE_CACHE,
    )
    m = {f"own.{k}": float(v) for k, v in res["own"].items() if isinstance(v, int | float)}
    m["voices.min"] = res["voices_std_ratio_min"]
    m["voices.mean"] = res["voices_std_ratio_mean"]
    m["gain"] = res["gain"]
    m.update({f"voice.{n}": v["std_ratio"] for n, v in res["voices"].items()})
    c = res["closures"]
    m["closure.audio"] = float(c.get("audio", math.nan))
    m["closure.tracked"] = float(c.get("tracked", math.nan))
    m["paper_fit.r0"] = float(paper["own"]["r0"])
    m["paper_fit.std_ratio"] = float(paper["own"]["std_ratio"])
    atomic_write_text(cache, json.dumps({"key": key, "measures": m}, indent=2))
    return m


def lips_markdown(variants: Sequence[Variant], results: Sequence[RunResult]) -> list[str]:
    """The lip-motion table: one row per variant (mean over seeds)."""
    if not any(r.lips for r in results):
        return []
    lines = [
        "## Lip motion (last checkpoint; target map fitted on the target's train split)",
        "",
        "Own audio = the target's test split: r between audio-driven and tracked mouth "
        "opening (face model, mm) at lag 0, the best lag (frames, + = prediction late), "
        "amplitude = predicted / tracked standard deviation (and 5-95 % range); voices = "
        "amplitude of each driving voice against the target's tracked opening; closures = "
        "share of the bilabial phones of the held-out audio (val + test) where the opening "
        "reaches the tracked 10th percentile within ±1 frame. Paper fit = the map without "
        "offset and gain (the paper's least squares).",
        "",
        "| variant | " + " | ".join(label for _, label, _ in LIP_COLUMNS) + " |",
        "|---|" + "--:|" * len(LIP_COLUMNS),
    ]
    for v in variants:
        rs = [r for r in results if r.variant == v.name and r.lips]
        if not rs:
            continue
        cells = [f"**{v.name}**"]
        for key, _, fmt in LIP_COLUMNS:
            mean, _ = _mean_std([r.lips.get(key, math.nan) for r in rs])
            cells.append(f"{mean:{fmt}}" if math.isfinite(mean) else "—")
        lines.append("| " + " | ".join(cells) + " |")
    voices = sorted({k for r in results for k in r.lips if k.startswith("voice.")})
    if voices:
        lines += [
            "",
            "Amplitude per voice:",
            "",
            "| variant | " + " | ".join(k.removeprefix("voice.") for k in voices) + " |",
            "|---|" + "--:|" * len(voices),
        ]
        for v in variants:
            rs = [r for r in results if r.variant == v.name and r.lips]
            if rs:
                vals = [_mean_std([r.lips.get(k, math.nan) for r in rs])[0] for k in voices]
                lines.append(f"| {v.name} | " + " | ".join(f"{x:.2f}" for x in vals) + " |")
    return ["", *lines, ""]


# --------------------------------------------------------------------------------------------
# Table and plot


def _mean_std(vals: Sequence[float]) -> tuple[float, float]:
    v = np.asarray([x for x in vals if math.isfinite(x)], dtype=float)
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else math.nan


def summarise(
    stage: Stage, variants: Sequence[Variant], results: Sequence[RunResult]
) -> list[dict[str, Any]]:
    """One row per variant: seeds, steps, and per metric and ``final``/``best`` the mean, the
    std over seeds (NaN with one seed) and the difference of the mean to the baseline's."""
    rows = []
    for v in variants:
        rs = [r for r in results if r.variant == v.name]
        row: dict[str, Any] = {
            "variant": v.name,
            "change": v.change,
            "note": v.note,
            "seeds": " ".join(str(r.seed) for r in rs),
            "n_seeds": len(rs),
            "steps": _mean_std([r.steps for r in rs])[0],
            "train_seconds": _mean_std([r.seconds for r in rs])[0],
        }
        for which in ("final", "best"):
            for m in stage.metrics:
                mean, std = _mean_std([getattr(r, which).get(m.key, math.nan) for r in rs])
                row[f"{m.key}.{which}.mean"] = mean
                row[f"{m.key}.{which}.std"] = std
        rows.append(row)
    base = rows[0]
    for row in rows:
        for which in ("final", "best"):
            for m in stage.metrics:
                k = f"{m.key}.{which}"
                row[f"{k}.delta"] = row[f"{k}.mean"] - base[f"{k}.mean"]
    return rows


def _logged(stage: Stage, rows: Sequence[dict[str, Any]]) -> list[Metric]:
    """The stage's metrics that some run logged (a column of NaNs is left out)."""
    return [
        m
        for m in stage.metrics
        if any(math.isfinite(r[f"{m.key}.final.mean"]) for r in rows) or not rows
    ]


def _cell(mean: float, std: float, fmt: str) -> str:
    if not math.isfinite(mean):
        return "—"
    return f"{mean:{fmt}} ± {std:{fmt}}" if math.isfinite(std) else f"{mean:{fmt}}"


def _delta(row: dict[str, Any], k: str, fmt: str) -> str:
    if row["variant"] == BASELINE:
        return ""
    d = row[f"{k}.delta"]
    return f"{d:+{fmt}}" if math.isfinite(d) else "—"


def markdown(stage: Stage, rows: Sequence[dict[str, Any]], header: Sequence[str]) -> str:
    metrics = _logged(stage, rows)
    arrow = {True: "↑", False: "↓"}
    lines = [f"# Ablation ({stage.name})", "", *header, ""]
    titles = {
        "final": "Final validation (the last validation of each run)",
        "best": (
            f"Best validation (the validation of the best checkpoint: "
            f"{'highest' if stage.monitor.higher_is_better else 'lowest'} {stage.monitor.key})"
        ),
    }
    for which in ("final", "best"):
        lines += [f"## {titles[which]}", ""]
        cols = ["variant", "change", "seeds", "steps"]
        for m in metrics:
            cols += [f"{m.label} {arrow[m.higher_is_better]}", "Δ"]
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "|".join(["---"] * 2 + ["--:"] * (len(cols) - 2)) + "|")
        for r in rows:
            steps = f"{r['steps']:.0f}" if math.isfinite(r["steps"]) else "—"
            cells = [f"**{r['variant']}**", r["change"].replace("|", "\\|"), str(r["n_seeds"])]
            cells.append(steps)
            for m in metrics:
                k = f"{m.key}.{which}"
                cells += [_cell(r[f"{k}.mean"], r[f"{k}.std"], m.fmt), _delta(r, k, m.fmt)]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        "Mean ± std over seeds (std only with several seeds); Δ = variant mean − baseline mean; "
        "↓ lower is better, ↑ higher is better.",
        "",
        "Variants:",
        "",
    ]
    lines += [f"- **{r['variant']}**: {r['note']}" for r in rows]
    return "\n".join(lines) + "\n"


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    atomic_write_text(path, buf.getvalue())


def write_runs_csv(path: Path, stage: Stage, results: Sequence[RunResult]) -> None:
    rows = []
    for r in results:
        row = {
            "variant": r.variant,
            "seed": r.seed,
            "run": str(r.run),
            "train_seconds": r.seconds,
            "steps": r.steps,
            "validations": r.validations,
        }
        for which in ("final", "best"):
            row.update({f"{m.key}.{which}": getattr(r, which)[m.key] for m in stage.metrics})
        row.update({f"lips.{k}": v for k, v in r.lips.items()})
        rows.append(row)
    write_csv(path, rows)


def bar_plot(path: Path, stage: Stage, rows: Sequence[dict[str, Any]]) -> None:
    """One panel per metric: bars = final mean (± std), diamonds = best, dashed = baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = _logged(stage, rows)
    n = max(len(metrics), 1)
    fig, axes = plt.subplots(1, n, figsize=(max(3.2 * n, 4), 0.45 * len(rows) + 2.2), squeeze=False)
    names = [r["variant"] for r in rows]
    y = np.arange(len(rows))
    for ax, m in zip(axes[0], metrics):
        mean = np.array([r[f"{m.key}.final.mean"] for r in rows], dtype=float)
        std = np.array([r[f"{m.key}.final.std"] for r in rows], dtype=float)
        best = np.array([r[f"{m.key}.best.mean"] for r in rows], dtype=float)
        colours = ["0.55" if nm == BASELINE else "C0" for nm in names]
        err = np.where(np.isfinite(std), std, 0.0)
        ax.barh(y, np.nan_to_num(mean), xerr=err, color=colours, capsize=3)
        ax.scatter(best, y, marker="D", s=18, c="w", edgecolors="k", zorder=3, label="best val.")
        if math.isfinite(mean[0]):
            ax.axvline(mean[0], color="k", ls="--", lw=0.8)
        ax.set_title(f"{m.label} {'↑' if m.higher_is_better else '↓'}", fontsize=9)
        ax.set_yticks(y, names if ax is axes[0][0] else [""] * len(names), fontsize=8)
        ax.invert_yaxis()
        ax.tick_params(axis="x", labelsize=8)
        ends = np.concatenate([mean - err, mean + err, best])
        finite = ends[np.isfinite(ends)]
        if finite.size:  # from 0 unless the values differ by little (PSNR, SSIM): zoom in
            lo, hi = float(finite.min()), float(finite.max())
            pad = 0.15 * (hi - lo) if hi > lo else 0.05 * max(abs(hi), 1e-3)
            zoom = lo > 0 and hi - lo < 0.25 * hi
            ax.set_xlim(lo - pad if zoom else min(0.0, lo - pad), hi + pad)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="upper right")
    fig.suptitle(
        f"Ablation ({stage.name}): final validation (bars, mean ± std over seeds), "
        f"best validation (diamonds), baseline (dashed)",
        fontsize=10,
    )
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def write_report(
    out: Path,
    stage: Stage,
    variants: Sequence[Variant],
    results: Sequence[RunResult],
    header: Sequence[str],
) -> Path:
    rows = summarise(stage, variants, results)
    md = out / "ablation.md"
    atomic_write_text(
        md, markdown(stage, rows, header) + "\n".join(lips_markdown(variants, results))
    )
    write_csv(out / "ablation.csv", rows)
    write_runs_csv(out / "ablation_runs.csv", stage, results)
    bar_plot(out / "ablation.png", stage, rows)
    return md


# --------------------------------------------------------------------------------------------
# Command line


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("names", nargs="*", metavar="NAME", help="conf/experiment/NAME.yaml layers")
    ap.add_argument("--data", required=True, help="dataset folder (a2e) or target store (render)")
    ap.add_argument("--stage", choices=["a2e", "render"], help="default: from the names / data")
    ap.add_argument(
        "--dataset",
        action="extend",
        nargs="+",
        default=[],
        metavar="VARIANT=PATH",
        help="a variant = the baseline config on other data (e.g. audio features)",
    )
    ap.add_argument(
        "--base",
        nargs="+",
        metavar="FILE",
        help="baseline config files (default: a2e/default.yaml or render/cpu.yaml)",
    )
    ap.add_argument(
        "--set",
        action="extend",
        nargs="+",
        default=[],
        metavar="key=value",
        help="overrides for every run (the budget: trainer.max_time=..., trainer.max_epochs=...)",
    )
    ap.add_argument(
        "--lips",
        metavar="STORE",
        help="a2e: measure each run's lip motion on this target store (its test split) and "
        "with --voices (see nvp.reenact.lips.a2e_lip_probe)",
    )
    ap.add_argument(
        "--voices",
        nargs="+",
        default=[],
        metavar="AUDIO",
        help="driving voices (files or folders) for --lips",
    )
    ap.add_argument(
        "--lips-smooth", type=float, default=0.0, help="smoothing sigma (frames) for --lips"
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed (0)")
    ap.add_argument("--out", help="output folder (default: runs/ablate-STAGE)")
    ap.add_argument("--report-only", action="store_true", help="only rebuild the table")
    ap.add_argument(
        "--force", action="store_true", help="retrain finished runs whose config differs"
    )
    return ap.parse_args(argv)


def _stage_name(args: argparse.Namespace) -> str:
    found = {stage_of(n) for n in args.names}
    if None in found:
        bad = [n for n in args.names if stage_of(n) is None]
        if not args.stage:
            raise AblationError(f"cannot tell the stage of {bad}: name --stage a2e|render")
    found.discard(None)
    if len(found) > 1:
        raise AblationError(f"experiments of several stages: {sorted(found)}")
    if args.stage:
        if found and found != {args.stage}:
            raise AblationError(f"--stage {args.stage} but the names are {found.pop()} experiments")
        return args.stage
    if found:
        return found.pop()
    return "render" if Path(args.data).suffix == ".zarr" else "a2e"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return _main(args)
    except (AblationError, NvpError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _main(args: argparse.Namespace) -> int:
    from nvp.training import RUN_DIR_ENV

    if os.environ.get(RUN_DIR_ENV):
        raise AblationError(f"unset {RUN_DIR_ENV}: every run needs its own run directory")
    reserved = [s for s in args.set if s.split("=", 1)[0] in ("seed", "out", "name", "resume")]
    if reserved:
        raise AblationError(f"{reserved[0]!r}: use --seeds / --out (set per run by ablate.py)")
    stage = _stages()[_stage_name(args)]
    if args.lips and not Path(args.lips).exists():
        raise AblationError(f"--lips {args.lips} does not exist")
    data = Path(args.data)
    if not data.exists():
        raise AblationError(f"--data {data} does not exist")
    base = list(args.base or stage.base)
    out = Path(args.out or f"runs/ablate-{stage.name}")
    variants = make_variants(stage.name, args.names, data, args.dataset)
    group = f"ablate-{out.resolve().name}"
    # every config first: a typo in a layer or an override fails before anything trains
    plan = [
        (
            v,
            seed,
            compose(stage, base, v, args.set, seed, out / "runs" / v.name / f"seed{seed}", group),
        )
        for seed in args.seeds
        for v in variants
    ]
    stage = with_declared_metrics(stage, plan[0][2] if plan else None)
    out.mkdir(parents=True, exist_ok=True)
    header = [
        f"Stage `{stage.name}`; baseline: {' + '.join(f'`{b}`' for b in base)} on `{data}`.",
        f"Overrides of every run (the budget): {' '.join(f'`{s}`' for s in args.set) or 'none'}.",
        f"Seeds: {' '.join(map(str, args.seeds))}. Runs: `{out / 'runs'}`.",
    ]
    for v in variants:
        if v.data != data:
            print(f"variant {v.name}: {v.note}")
    results: list[RunResult] = []
    for v, _seed, cfg in plan:
        r, trained = run_or_resume(
            stage, v, cfg, Path(cfg.out), force=args.force, train=not args.report_only
        )
        if r is not None:
            if args.lips and stage.name == "a2e":
                # a dataset variant (other features) has its own store of the target
                lips = Path(args.lips)
                if v.data != data:
                    lips = v.data / lips.name
                r.lips = lip_measures(r.run, lips, args.voices, args.lips_smooth)
            results.append(r)
        if trained:  # the table so far, readable while the study goes on
            write_report(out, stage, variants, results, header)
    md = write_report(out, stage, variants, results, header)
    print(md.read_text())
    print(f"table: {md}\n       {out / 'ablation.csv'}\nplot:  {out / 'ablation.png'}")
    print(f"runs:  {out / 'ablation_runs.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
