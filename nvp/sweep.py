"""``nvp sweep``: hyper-parameter sweeps from W&B sweep YAML files, online or offline.

A sweep file (``conf/sweeps/*.yaml``) is a plain W&B sweep configuration: ``method``
(grid/random/bayes), ``metric`` (a name from ``logs/metrics.csv``, ``maximize``/``minimize``),
``parameters`` keyed by nvp config keys (``renderer.base_width``), and a ``command`` with
W&B's macros::

    command: [${env}, ${interpreter}, -m, nvp.cli, train-renderer,
              ${envvar:NVP_SWEEP_DATASET}, ${args_no_hyphens}]

``${args_no_hyphens}`` becomes the trial's ``key=value`` overrides and
``${envvar:NVP_SWEEP_DATASET}`` the dataset (``--dataset``, or the environment variable, on
every machine that runs an agent).

Online (the default) the sweep is created on the W&B server (``wandb.sweep``) and a W&B agent
runs the trials (``wandb.agent``); every trial logs to W&B. Offline (``--offline``) the same
file runs on this machine through W&B's own sweep engine (the ``sweeps`` package, the code
behind W&B's sweep server): each trial gets a run directory ``<sweep>/trial-NNN``, its metric
is read from ``logs/metrics.csv``, finished trials are fed back to the engine (bayes needs
them), and ``summary.csv`` / ``summary.md`` rank the trials by the metric. An interrupted
offline sweep continues with ``--resume <sweep directory>``.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import gc
import io
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from omegaconf import OmegaConf

from nvp.config import atomic_write_text, load, to_object
from nvp.errors import ConfigError, InputError, NvpError
from nvp.runs import RunLog
from nvp.stages import STAGES, TRAINING, Stage, run_command
from nvp.training import RUN_DIR_ENV, wandb_api_key_configured

#: Environment variable the sweep commands take the dataset (or target store) from.
DATASET_ENV = "NVP_SWEEP_DATASET"

#: nvp training commands a sweep may run: subcommand -> its stage (schema, default YAML).
TRAIN_COMMANDS: dict[str, Stage] = {s.name: s for s in TRAINING.values()}

#: W&B's command when a sweep gives none.
DEFAULT_COMMAND = ["${env}", "${interpreter}", "${program}", "${args}"]

STATE_FILE = "trials.json"
SETTINGS_FILE = "sweep.json"
_ENVVAR = re.compile(r"\$\{envvar:([A-Za-z0-9_]*)\}")


class TrialInterrupted(Exception):
    """The trial (and with it the sweep) was interrupted (Ctrl-C)."""


# --------------------------------------------------------------------------------------------
# Sweep files


def _sweeps():
    """The ``sweeps`` package (W&B's sweep engine); its pydantic-v1 style warnings muted."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import sweeps
    return sweeps


def load_sweep(path: str | Path) -> dict[str, Any]:
    """A sweep YAML file as a dict (no validation; see :func:`validate_sweep`)."""
    p = Path(path)
    if not p.is_file():
        raise InputError("sweep file not found", path=p)
    try:
        cfg = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"not a valid YAML file: {exc}", path=p) from exc
    if not isinstance(cfg, dict):
        raise ConfigError("a sweep file must hold a mapping at the top level", path=p)
    return cfg


def schema_violations(cfg: Mapping[str, Any]) -> list[str]:
    """What the W&B sweep schema (the ``sweeps`` package's) finds wrong with ``cfg``."""
    try:
        return list(_sweeps().schema_violations_from_proposed_config(dict(cfg)))
    except ValueError as exc:
        return [str(exc)]


def train_command(command: Sequence[Any]) -> tuple[int, str] | None:
    """(index, subcommand) of the nvp training subcommand in a sweep command, or None."""
    for i, tok in enumerate(command):
        if str(tok) in TRAIN_COMMANDS:
            return i, str(tok)
    return None


def _schema(name: str):
    return TRAIN_COMMANDS[name].schema_class


def _candidate_values(spec: Mapping[str, Any]) -> list[Any]:
    """Values of one parameter spec worth composing with the config (the extremes of ranges)."""
    if "value" in spec:
        return [spec["value"]]
    if "values" in spec:
        return list(spec["values"])
    if "min" in spec and "max" in spec:
        lo, hi = spec["min"], spec["max"]
        dist = str(spec.get("distribution", ""))
        if dist in ("log_uniform", "q_log_uniform"):  # bounds are natural-log exponents
            return [math.exp(lo), math.exp(hi)]
        if dist == "inv_log_uniform":
            return [math.exp(-hi), math.exp(-lo)]
        return [lo, hi]
    return []


def override(key: str, value: Any) -> str:
    """A trial's ``key=value`` override as W&B's ``${args_no_hyphens}`` writes it."""
    return f"{key}={value}"


def validate_sweep(
    cfg: Mapping[str, Any], *, overrides: Sequence[str] = (), configs: Sequence[str] = ()
) -> str | None:
    """Check a sweep against the W&B sweep schema and, for an nvp training command, check that
    every parameter is a config key of that command and that its values (range ends) compose
    with the command's default YAML, ``configs`` and ``overrides``.

    Returns:
        The nvp training subcommand the sweep runs (``train-renderer``), or None.

    Raises:
        ConfigError: naming the schema violation, unknown key or invalid value.
    """
    problems = schema_violations(cfg)
    if problems:
        raise ConfigError("invalid sweep configuration: " + "; ".join(problems))
    if not isinstance(cfg.get("parameters"), Mapping) or not cfg["parameters"]:
        raise ConfigError("a sweep needs at least one parameter")
    found = train_command(cfg.get("command") or [])
    if found is None:
        return None
    name = found[1]
    schema = _schema(name)
    files = [TRAIN_COMMANDS[name].default_config, *configs]
    base = load(schema, *files, cli=list(overrides))
    missing = object()
    for key, spec in cfg["parameters"].items():
        if not isinstance(spec, Mapping) or "parameters" in spec:
            raise ConfigError(
                f"sweep parameter '{key}': use flat dotted config keys (renderer.base_width), "
                "not nested parameters"
            )
        if OmegaConf.select(base, key, default=missing) is missing:
            raise ConfigError(f"sweep parameter '{key}' is not a config key of `nvp {name}`")
        for value in _candidate_values(spec):
            try:
                to_object(load(schema, *files, cli=[*overrides, override(key, value)]))
            except ConfigError as exc:
                raise ConfigError(f"sweep parameter '{key}' = {value!r}: {exc}") from exc
    return name


# --------------------------------------------------------------------------------------------
# Commands


def expand_command(
    cfg: Mapping[str, Any],
    params: Mapping[str, Any],
    *,
    extra: Sequence[str] = (),
    interpreter: str | None = None,
) -> list[str]:
    """A trial's command line: the sweep's ``command`` with W&B's macros filled in.

    ``${env}`` is dropped (the command runs without ``/usr/bin/env``), ``${interpreter}`` is this
    Python, ``${program}`` the sweep's ``program``, ``${args}`` / ``${args_no_hyphens}`` /
    ``${args_no_boolean_flags}`` / ``${args_json}`` the parameters, ``${envvar:NAME}`` the
    environment variable (left as ``NAME`` when unset, as W&B does). ``extra`` arguments
    (``--config`` layers, ``key=value`` overrides) go right before the first ``${args...}`` macro,
    so the trial's own parameters win.
    """
    items = list(params.items())
    macros: dict[str, list[str]] = {
        "env": [],
        "interpreter": [interpreter or sys.executable],
        "program": [str(cfg["program"])] if cfg.get("program") else [],
        "args": [f"--{override(k, v)}" for k, v in items],
        "args_no_hyphens": [override(k, v) for k, v in items],
        "args_no_boolean_flags": [
            f"--{k}" if v is True else f"--{override(k, v)}" for k, v in items if v is not False
        ],
        "args_json": [json.dumps(dict(items))],
    }
    out: list[str] = []
    inserted = False
    for tok in [str(t) for t in (cfg.get("command") or DEFAULT_COMMAND)]:
        m = re.fullmatch(r"\$\{(\w+)\}", tok)
        if m and m.group(1).startswith("args") and not inserted:
            out.extend(extra)
            inserted = True
        if m and m.group(1) in macros:
            out.extend(macros[m.group(1)])
        elif m:
            raise ConfigError(f"unknown sweep command macro {tok}")
        else:
            out.append(_ENVVAR.sub(lambda e: os.environ.get(e.group(1), e.group(1)), tok))
    if not inserted:
        out.extend(extra)
    return out


def nvp_argv(command: Sequence[str]) -> list[str] | None:
    """The ``nvp`` arguments of a command that runs nvp (``python -m nvp.cli ...`` or ``nvp
    ...``), or None for any other program."""
    for i, tok in enumerate(command):
        if tok == "-m" and i + 1 < len(command) and command[i + 1] in ("nvp", "nvp.cli"):
            return list(command[i + 2 :])
        if Path(tok).name == "nvp" and i == 0:
            return list(command[1:])
    return None


def _needs_dataset(cfg: Mapping[str, Any]) -> bool:
    return any(DATASET_ENV in str(t) for t in cfg.get("command") or [])


# --------------------------------------------------------------------------------------------
# The offline engine


def _py(v: Any) -> Any:
    """Numpy scalars (the engine's samples) as plain Python values."""
    if isinstance(v, np.generic):
        return v.item()
    return v


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed Python's and numpy's global generators (the engine draws from them) and restore
    them afterwards: proposals are reproducible, and training's seed_everything cannot make
    every random trial draw the same values."""
    py_state, np_state = random.getstate(), np.random.get_state()  # noqa: NPY002
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (the engine draws from the global RNG)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)  # noqa: NPY002


def metric_name(cfg: Mapping[str, Any]) -> str | None:
    m = cfg.get("metric")
    return m.get("name") if isinstance(m, Mapping) else None


def metric_goal(cfg: Mapping[str, Any]) -> str:
    m = cfg.get("metric")
    return (m.get("goal") if isinstance(m, Mapping) else None) or "minimize"


def engine_runs(cfg: Mapping[str, Any], trials: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The trials that ended, as the engine's ``SweepRun`` objects (metric history and summary
    from ``logs/metrics.csv``)."""
    sw = _sweeps()
    name = metric_name(cfg)
    runs = []
    for t in trials:
        if t["status"] not in ("finished", "failed"):
            continue
        history = [{name: v} for v in t.get("history") or []] if name else []
        summary = {name: t["metric_last"]} if name and t.get("metric_last") is not None else {}
        # The aliases (summaryMetrics, sampledHistory) work with every sweeps release: 0.2.0
        # under pydantic 2 silently drops the field names.
        runs.append(
            sw.SweepRun(
                name=t["id"],
                state=sw.RunState.finished if t["status"] == "finished" else sw.RunState.failed,
                config={k: {"value": v} for k, v in t["params"].items()},
                summaryMetrics=summary,
                sampledHistory=history,
            )
        )
    return runs


def propose(
    cfg: Mapping[str, Any], trials: Sequence[Mapping[str, Any]], *, seed: int, index: int
) -> dict[str, Any] | None:
    """The parameters of the next trial from W&B's sweep engine (``sweeps.next_run``), or None
    when the search space is exhausted (grid). Reproducible for a given ``seed`` and ``index``."""
    sw = _sweeps()
    runs = engine_runs(cfg, trials)
    with _seeded(seed * 1_000_003 + index), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's GP convergence warnings (bayes)
        run = sw.next_run(dict(cfg), runs, validate=True)
    if run is None:
        return None
    return {k: _py(v["value"]) for k, v in run.config.items()}


def read_metric(run_dir: Path, name: str) -> list[float]:
    """Every finite logged value of ``name`` in a run's ``logs/metrics.csv``, in order."""
    return RunLog.read(run_dir).values(name)


def run_trial(command: Sequence[str], run_dir: Path, *, isolate: bool = False) -> str | None:
    """Run one trial with ``NVP_RUN_DIR=run_dir`` (the training writes exactly there).

    An nvp stage command runs in this process through :func:`nvp.stages.run_command` (no
    interpreter start-up) unless ``isolate``; anything else, or with ``isolate``, runs as a
    subprocess.

    Returns:
        None on success, else the error (exit status or exception).

    Raises:
        TrialInterrupted: on Ctrl-C (Lightning turns it into ``SystemExit``).
    """
    argv = nvp_argv(command)
    if argv is not None and not isolate and argv and argv[0] in STAGES:
        old = os.environ.get(RUN_DIR_ENV)
        os.environ[RUN_DIR_ENV] = str(run_dir)
        try:
            with _sigint_seen() as seen:
                run_command(argv)
        except KeyboardInterrupt as exc:
            raise TrialInterrupted("interrupted") from exc
        except SystemExit as exc:  # Lightning's answer to Ctrl-C
            if seen():
                raise TrialInterrupted("interrupted") from exc
            return f"exit status {exc.code}"
        except NvpError as exc:  # a bad setting or input of this trial
            print(f"nvp {argv[0]}: error: {exc}", file=sys.stderr)
            return f"error: {exc}"
        except Exception as exc:  # a crash of one trial does not end the sweep
            return f"{type(exc).__name__}: {exc}"
        finally:
            if old is None:
                os.environ.pop(RUN_DIR_ENV, None)
            else:
                os.environ[RUN_DIR_ENV] = old
        return None
    env = dict(os.environ, **{RUN_DIR_ENV: str(run_dir)})
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    cmd = list(command)
    if argv is not None and Path(cmd[0]).name == "nvp":
        cmd = [sys.executable, "-m", "nvp.cli", *argv]
    try:
        proc = subprocess.run(cmd, env=env, check=False)
    except KeyboardInterrupt as exc:
        raise TrialInterrupted("interrupted") from exc
    except OSError as exc:
        return f"cannot run {cmd[0]}: {exc}"
    if proc.returncode in (130, -2):
        raise TrialInterrupted("interrupted")
    return None if proc.returncode == 0 else f"exit status {proc.returncode}"


@contextlib.contextmanager
def _sigint_seen() -> Iterator[Any]:
    """Record whether SIGINT arrived while the block ran (then raise KeyboardInterrupt as
    usual); yields a function returning that flag. The previous handler is restored after
    (Lightning ignores SIGINT once it has caught one)."""
    seen = [False]
    if threading.current_thread() is not threading.main_thread():
        yield lambda: seen[0]
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        seen[0] = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: seen[0]
    finally:
        signal.signal(signal.SIGINT, previous)


class OfflineSweep:
    """A sweep directory: ``sweep.json`` (the sweep and its settings), ``sweep.yaml`` (the sweep
    file as given), ``trials.json`` (every trial: parameters, status, metric), one run
    directory per trial (``trial-000``, ...), ``summary.csv`` and ``summary.md``."""

    def __init__(self, root: Path, settings: dict[str, Any], trials: list[dict[str, Any]]):
        self.root = Path(root)
        self.settings = settings
        self.trials = trials

    @property
    def cfg(self) -> dict[str, Any]:
        return self.settings["sweep"]

    @classmethod
    def create(
        cls,
        cfg: Mapping[str, Any],
        out: str | Path,
        *,
        name: str,
        dataset: str | None,
        extra: Sequence[str],
        seed: int,
        metric_value: str,
        source: str | None = None,
    ) -> OfflineSweep:
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S")
        base = Path(out)
        base.mkdir(parents=True, exist_ok=True)
        for n in range(1000):
            root = base / (f"{name}-{stamp}" + (f"-{n}" if n else ""))
            try:
                root.mkdir()
                break
            except FileExistsError:
                continue
        else:
            raise RuntimeError(f"could not create a fresh sweep directory under {base}")
        settings = {
            "sweep": dict(cfg),
            "source": source,
            "dataset": dataset,
            "extra": list(extra),
            "seed": seed,
            "metric_value": metric_value,
        }
        atomic_write_text(root / "sweep.yaml", yaml.safe_dump(dict(cfg), sort_keys=False))
        sweep = cls(root, settings, [])
        sweep.save()
        return sweep

    @classmethod
    def open(cls, root: str | Path) -> OfflineSweep:
        root = Path(root)
        try:
            settings = json.loads((root / SETTINGS_FILE).read_text())
            trials = json.loads((root / STATE_FILE).read_text())
        except FileNotFoundError as exc:
            raise InputError("not an offline sweep directory (no sweep.json)", path=root) from exc
        return cls(root, settings, trials)

    def save(self) -> None:
        atomic_write_text(self.root / SETTINGS_FILE, json.dumps(self.settings, indent=2))
        atomic_write_text(self.root / STATE_FILE, json.dumps(self.trials, indent=2))

    def command(self, params: Mapping[str, Any]) -> list[str]:
        return expand_command(self.cfg, params, extra=self.settings["extra"])

    def run(self, *, count: int | None, isolate: bool = False, log=print) -> int:
        """Run trials until ``count`` have run in this call, the grid is exhausted or the
        sweep's ``run_cap`` is reached; returns the number of trials run.

        Trials a previous call left interrupted run again first (their partial run directory
        is kept as ``trial-NNN.interrupted``).
        """
        cfg = self.cfg
        method = cfg.get("method")
        cap = cfg.get("run_cap")
        if count is None and cap is None and method != "grid":
            raise InputError(f"a {method} sweep never ends by itself: give --count N")
        if self.settings.get("dataset"):
            os.environ[DATASET_ENV] = self.settings["dataset"]
        elif _needs_dataset(cfg) and not os.environ.get(DATASET_ENV):
            raise InputError(
                f"this sweep's command needs a dataset: pass --dataset PATH (or set {DATASET_ENV})"
            )
        name = metric_name(cfg)
        done = 0
        while count is None or done < count:
            pending = [t for t in self.trials if t["status"] in ("running", "interrupted")]
            if pending:
                trial = pending[0]
                d = self.root / trial["id"]
                if d.exists():
                    aside = d.with_name(d.name + ".interrupted")
                    shutil.rmtree(aside, ignore_errors=True)
                    d.rename(aside)
            else:
                ended = [t for t in self.trials if t["status"] in ("finished", "failed")]
                if cap is not None and len(ended) >= int(cap):
                    log(f"run_cap {cap} reached")
                    break
                index = len(self.trials)
                params = propose(cfg, self.trials, seed=int(self.settings["seed"]), index=index)
                if params is None:
                    log("search space exhausted")
                    break
                trial = {"id": f"trial-{index:03d}", "params": params}
                self.trials.append(trial)
            cmd = self.command(trial["params"])
            trial.update(status="running", command=cmd, error=None, history=[])
            trial.update(metric_last=None, metric_best=None, seconds=None)
            self.save()
            log(f"[{trial['id']}] {' '.join(cmd)}")
            t0 = time.perf_counter()
            try:
                error = run_trial(cmd, self.root / trial["id"], isolate=isolate)
            except TrialInterrupted:
                trial["status"] = "interrupted"
                trial["seconds"] = round(time.perf_counter() - t0, 2)
                self.save()
                self.write_summary()
                raise
            gc.collect()  # the in-process trial's data loaders, module and trainer
            trial["seconds"] = round(time.perf_counter() - t0, 2)
            trial["status"] = "failed" if error else "finished"
            trial["error"] = error
            if name:
                h = read_metric(self.root / trial["id"], name)
                best = max if metric_goal(cfg) == "maximize" else min
                trial.update(history=h, metric_last=h[-1] if h else None)
                trial["metric_best"] = best(h) if h else None
            done += 1
            self.save()
            self.write_summary()
            value = trial.get(f"metric_{self.settings['metric_value']}")
            log(
                f"[{trial['id']}] {trial['status']} in {trial['seconds']:.1f} s"
                + (f", {name} = {value:.6g}" if value is not None else "")
                + (f" ({error})" if error else "")
            )
        self.write_summary()
        return done

    def ranked(self) -> list[dict[str, Any]]:
        """Trials with a metric first, best first (the sweep's goal, the ``metric_value``
        reduction), then the others in order."""
        key = f"metric_{self.settings['metric_value']}"
        scored = [
            t for t in self.trials if t.get("status") == "finished" and t.get(key) is not None
        ]
        rest = [t for t in self.trials if t not in scored]
        scored.sort(key=lambda t: t[key], reverse=metric_goal(self.cfg) == "maximize")
        return scored + rest

    def write_summary(self) -> tuple[Path, Path]:
        """``summary.csv`` and ``summary.md`` (ranked trials) in the sweep directory."""
        name = metric_name(self.cfg) or "metric"
        reduce = self.settings["metric_value"]
        other = "last" if reduce == "best" else "best"
        pnames = list(self.cfg.get("parameters") or {})
        cols = ["rank", "trial", "status", f"{name} ({reduce})", f"{name} ({other})"]
        cols += [*pnames, "seconds", "run_dir"]
        rows = []
        for rank, t in enumerate(self.ranked(), 1):
            values = [rank, t["id"], t.get("status"), t.get(f"metric_{reduce}")]
            values += [t.get(f"metric_{other}"), *(t["params"].get(p) for p in pnames)]
            values += [t.get("seconds"), str(self.root / t["id"])]
            rows.append(dict(zip(cols, values)))
        lines = []
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
        csv_path = atomic_write_text(self.root / "summary.csv", buf.getvalue())

        def fmt(v: Any) -> str:
            if v is None:
                return ""
            if isinstance(v, float):
                return f"{v:.6g}"
            return str(v)

        goal = metric_goal(self.cfg)
        title = self.cfg.get("name") or self.root.name
        lines.append(f"# Sweep {title}")
        lines.append("")
        lines.append(
            f"{self.cfg.get('method')} search, {len(self.trials)} trials; metric `{name}` "
            f"({goal}), ranked by each trial's {reduce} value in `logs/metrics.csv`."
        )
        lines.append("")
        md_cols = [c for c in cols if c != "run_dir"]
        lines.append("| " + " | ".join(md_cols) + " |")
        lines.append("|" + "|".join("---" for _ in md_cols) + "|")
        for r in rows:
            lines.append("| " + " | ".join(fmt(r[c]) for c in md_cols) + " |")
        best = self.ranked()[0] if self.ranked() else None
        if best is not None and best.get(f"metric_{reduce}") is not None:
            lines += ["", f"Best: `{best['id']}` ({self.root / best['id']})", ""]
            lines.append("```")
            lines.append(" ".join(best.get("command") or []))
            lines.append("```")
        md_path = atomic_write_text(self.root / "summary.md", "\n".join(lines) + "\n")
        return csv_path, md_path


# --------------------------------------------------------------------------------------------
# Online


def run_online(
    cfg: Mapping[str, Any],
    *,
    extra: Sequence[str],
    count: int | None,
    project: str | None,
    entity: str | None,
    sweep_id: str | None = None,
    log=print,
) -> int:
    """Create the sweep on the W&B server (unless ``sweep_id`` names one) and run a W&B agent
    here: it runs the sweep's command per trial, every trial logging to W&B."""
    if not wandb_api_key_configured():
        raise InputError(
            "W&B is not configured (no WANDB_API_KEY, no netrc entry for the W&B host): run "
            "`wandb login` or set WANDB_API_KEY, or add --offline to run the sweep on this "
            "machine with W&B's sweep engine"
        )
    import wandb

    if sweep_id and extra:
        raise InputError(
            "--sweep-id joins a sweep whose command is fixed on the W&B server: leave out "
            "--config and key=value overrides"
        )
    cfg = dict(cfg)
    if not sweep_id and train_command(cfg.get("command") or []) is not None:
        extra = [*extra, "trainer.logger.wandb=true"]
    if extra:
        cmd = [str(t) for t in cfg.get("command") or DEFAULT_COMMAND]
        at = next((i for i, t in enumerate(cmd) if t.startswith("${args")), len(cmd))
        cfg["command"] = cmd[:at] + list(extra) + cmd[at:]
    # The agent runs `python` / `nvp` from PATH: make them this environment's.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    project = project or cfg.get("project") or "nvp"
    entity = entity or cfg.get("entity")
    if not sweep_id:
        sweep_id = wandb.sweep(cfg, project=project, entity=entity)
    where = "/".join(x for x in (entity, project, sweep_id) if x)
    log(
        f"W&B sweep {where}; more agents: {DATASET_ENV}=... wandb agent {where} "
        "(or nvp sweep --sweep-id ...)"
    )
    wandb.agent(sweep_id, project=project, entity=entity, count=count)
    return 0


# --------------------------------------------------------------------------------------------
# The command


def sweep_command(
    file: str | None,
    *,
    overrides: Sequence[str] = (),
    configs: Sequence[str] = (),
    offline: bool = False,
    count: int | None = None,
    dataset: str | None = None,
    out: str = "runs/sweeps",
    resume: str | None = None,
    seed: int = 0,
    metric_value: str = "best",
    isolate: bool = False,
    project: str | None = None,
    entity: str | None = None,
    sweep_id: str | None = None,
    dry_run: bool = False,
) -> int:
    """``nvp sweep``: see the module docstring. Returns the exit status."""
    if count is not None and count < 1:
        raise InputError("--count must be >= 1")
    if dataset is not None:
        if not Path(dataset).exists():
            raise InputError("dataset not found", path=dataset)
        dataset = str(Path(dataset).resolve())
        os.environ[DATASET_ENV] = dataset
    extra = [a for c in configs for a in ("--config", str(Path(c).resolve()))] + list(overrides)

    if resume:
        if file or overrides or configs:
            raise InputError(
                "--resume continues a sweep with its saved settings: leave out the sweep "
                "file, --config and key=value overrides"
            )
        sweep = OfflineSweep.open(resume)
        if dataset:
            sweep.settings["dataset"] = dataset
        print(f"sweep directory: {sweep.root} (resuming, {len(sweep.trials)} trials so far)")
        return _run_offline(sweep, count=count, isolate=isolate)

    if not file:
        if sweep_id and not offline:
            return run_online(
                {}, extra=extra, count=count, project=project, entity=entity, sweep_id=sweep_id
            )
        raise InputError("no sweep file given (conf/sweeps/*.yaml)")
    cfg = load_sweep(file)
    validate_sweep(cfg, overrides=overrides, configs=[str(Path(c).resolve()) for c in configs])
    if dry_run:
        print(yaml.safe_dump(cfg, sort_keys=False), end="")
        params = propose(cfg, [], seed=seed, index=0)
        if params is not None:
            print("first trial:", " ".join(expand_command(cfg, params, extra=extra)))
        return 0
    if not offline:
        return run_online(
            cfg, extra=extra, count=count, project=project, entity=entity, sweep_id=sweep_id
        )
    if _needs_dataset(cfg) and not os.environ.get(DATASET_ENV):
        raise InputError(
            f"this sweep's command needs a dataset: pass --dataset PATH (or set {DATASET_ENV})"
        )
    sweep = OfflineSweep.create(
        cfg,
        out,
        name=str(cfg.get("name") or Path(file).stem),
        dataset=os.environ.get(DATASET_ENV) if _needs_dataset(cfg) else None,
        extra=extra,
        seed=seed,
        metric_value=metric_value,
        source=str(Path(file).resolve()),
    )
    print(f"sweep directory: {sweep.root}")
    return _run_offline(sweep, count=count, isolate=isolate)


def _run_offline(sweep: OfflineSweep, *, count: int | None, isolate: bool) -> int:
    try:
        sweep.run(count=count, isolate=isolate)
    except TrialInterrupted:
        print(
            f"sweep interrupted; continue with: nvp sweep --offline --resume {sweep.root}",
            file=sys.stderr,
        )
        return 130
    _, md = sweep.write_summary()
    print(md.read_text(), end="")
    failed = sum(t["status"] == "failed" for t in sweep.trials)
    print(f"sweep directory: {sweep.root}\nsummary: {md} and {sweep.root / 'summary.csv'}")
    return 1 if failed and failed == len(sweep.trials) else 0
