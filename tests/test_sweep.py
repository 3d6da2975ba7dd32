"""Sweeps: the shipped sweep files, W&B's sweep engine offline (grid/random/bayes proposals), a
real 3-trial offline sweep of the tiny renderer with its summary, resume, and the online guard."""

from __future__ import annotations

import csv
import itertools
import json
import os
import random
from pathlib import Path

import pytest

from nvp.cli import main
from nvp.config import CONF_DIR, load, to_object
from nvp.data.store import find_stores
from nvp.errors import ConfigError
from nvp.stages import STAGES
from nvp.sweep import (
    DATASET_ENV,
    TRAIN_COMMANDS,
    _schema,
    engine_runs,
    expand_command,
    load_sweep,
    propose,
    read_metric,
    run_trial,
    schema_violations,
    train_command,
    validate_sweep,
)

SWEEPS = sorted((CONF_DIR / "sweeps").glob("*.yaml"))
REPO = CONF_DIR.parent


def test_shipped_sweeps_exist():
    names = {p.name for p in SWEEPS}
    assert {"render_width_lr.yaml", "a2e_lambda_filter.yaml"} <= names


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_sweep_file_is_valid(path):
    cfg = load_sweep(path)
    assert schema_violations(cfg) == []  # the sweeps package's (W&B's) JSON schema
    cmd = [str(t) for t in cfg["command"]]
    assert "${args_no_hyphens}" in cmd and f"${{envvar:{DATASET_ENV}}}" in cmd
    _, sub = train_command(cmd)
    assert validate_sweep(cfg) == sub
    # Every parameter is a config key of that command: compose it (unknown keys raise).
    schema, default_yaml = _schema(sub), TRAIN_COMMANDS[sub].default_config
    for key, spec in cfg["parameters"].items():
        values = spec.get("values") or [spec.get("min"), spec.get("max")]
        for v in values:
            c = load(schema, default_yaml, cli=[f"{key}={v}"])
            to_object(c)  # and the value is valid
            got = c
            for part in key.split("."):
                got = got[part]
            assert got == pytest.approx(v)
    # The metric is the one the training monitors (the best checkpoint's), in its direction.
    monitor = STAGES[sub].monitor
    assert cfg["metric"]["name"] == monitor.key
    assert cfg["metric"]["goal"] == ("maximize" if monitor.higher_is_better else "minimize")


def test_validation_names_the_problem():
    cfg = load_sweep(CONF_DIR / "sweeps" / "render_width_lr.yaml")
    bad = dict(cfg, parameters={"renderer.base_widht": {"values": [8]}})
    with pytest.raises(ConfigError, match="base_widht"):
        validate_sweep(bad)
    with pytest.raises(ConfigError, match="invalid sweep configuration"):
        validate_sweep(dict(cfg, method="gird"))
    with pytest.raises(ConfigError, match="max_width"):  # a value the schema rejects
        validate_sweep(cfg, overrides=["renderer.max_width=16"])


def _finished(trials_params, metric=None):
    return [
        {
            "id": f"trial-{i:03d}",
            "params": p,
            "status": "finished",
            "history": [] if metric is None else [metric(p)],
            "metric_last": None if metric is None else metric(p),
        }
        for i, p in enumerate(trials_params)
    ]


def test_grid_covers_the_product_once():
    cfg = load_sweep(CONF_DIR / "sweeps" / "render_width_lr.yaml")
    got = []
    while (p := propose(cfg, _finished(got), seed=0, index=len(got))) is not None:
        got.append(p)
    names = sorted(cfg["parameters"])  # the engine orders parameters by name
    expected = [
        dict(zip(names, vals))
        for vals in itertools.product(*(cfg["parameters"][n]["values"] for n in names))
    ]
    assert got == expected and len(got) == 9


def test_random_is_reproducible_and_in_range():
    cfg = {
        "method": "random",
        "parameters": {
            "renderer.base_width": {"values": [8, 16, 32]},
            "optim.net_lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-2},
        },
    }
    draws = []
    for i in range(6):
        random.seed(0)  # training's seed_everything between trials must not repeat the draws
        draws.append(propose(cfg, [], seed=7, index=i))
    assert all(d["renderer.base_width"] in (8, 16, 32) for d in draws)
    assert all(1e-5 <= d["optim.net_lr"] <= 1e-2 for d in draws)
    assert len({d["optim.net_lr"] for d in draws}) == 6
    assert propose(cfg, [], seed=7, index=3) == draws[3]
    assert propose(cfg, [], seed=8, index=3) != draws[3]
    assert all(type(d["optim.net_lr"]) is float for d in draws)  # plain floats, JSON-able


def test_bayes_sees_the_metric():
    cfg = load_sweep(CONF_DIR / "sweeps" / "a2e_lambda_filter.yaml")
    params = [
        {"loss.temporal_weight": w, "net.seq_len": s}
        for w, s in ((2.0, 6), (10.0, 8), (50.0, 12), (90.0, 16))
    ]
    trials = _finished(params, metric=lambda p: abs(p["loss.temporal_weight"] - 20) / 10)
    runs = engine_runs(cfg, trials)
    assert [r.summary_metrics for r in runs][1] == {"val/vertex_rms_mouth_mm": 1.0}
    assert runs[1].metric_extremum("val/vertex_rms_mouth_mm", "minimum") == 1.0
    p = propose(cfg, trials, seed=0, index=4)
    assert 1.0 <= p["loss.temporal_weight"] <= 100.0 and p["net.seq_len"] in (6, 8, 12, 16)


def test_expand_command(monkeypatch):
    monkeypatch.setenv(DATASET_ENV, "/data/set")
    cfg = load_sweep(CONF_DIR / "sweeps" / "a2e_lambda_filter.yaml")
    cmd = expand_command(
        cfg, {"net.seq_len": 8, "loss.temporal_weight": 1e-5}, extra=["a=1"], interpreter="py"
    )
    assert cmd == [
        "py",
        "-m",
        "nvp.cli",
        "train-a2e",
        "/data/set",
        "a=1",
        "net.seq_len=8",
        "loss.temporal_weight=1e-05",
    ]
    assert expand_command({"program": "x.py"}, {"a": 1}, interpreter="py") == [
        "py",
        "x.py",
        "--a=1",
    ]


@pytest.fixture(autouse=True)
def _dataset_env(monkeypatch):
    """``nvp sweep --dataset`` exports NVP_SWEEP_DATASET: start without it, remove it after."""
    monkeypatch.setenv(DATASET_ENV, "")
    monkeypatch.delenv(DATASET_ENV)


def test_trial_errors_are_failures_not_interrupts(tmp_path):
    err = run_trial(["nvp", "train-renderer", "x", "--bogus"], tmp_path / "t")
    assert err == "error: nvp train-renderer: option --bogus not supported here (use key=value)"
    err = run_trial(["nvp", "train-renderer", str(tmp_path / "missing.zarr")], tmp_path / "u")
    assert err.startswith("error: ") and "missing.zarr: sequence store not found" in err
    err = run_trial(["nvp", "train-renderer", "x", "crop.szie=1"], tmp_path / "v")
    assert "unknown config key 'crop.szie'" in err


@pytest.fixture(scope="module")
def store(tiny_dataset) -> Path:
    return find_stores(tiny_dataset)[0]


#: The tiny renderer, two training steps and one validation batch per trial (seconds on a CPU;
#: a limit of 1 would mean the whole epoch).
TINY = [
    "--config",
    str(CONF_DIR / "render" / "tiny.yaml"),
    "trainer.max_steps=-1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "data.max_val_frames=2",
    "renderer.max_width=32",
    "renderer.levels=3",
    "data.crop=32",
]


def test_offline_sweep_end_to_end(store, tmp_path):
    sweep_file = CONF_DIR / "sweeps" / "render_width_lr.yaml"
    args = ["sweep", str(sweep_file), "--offline", "--count", "3", "--dataset", str(store)]
    assert main([*args, "--out", str(tmp_path), *TINY]) == 0
    (root,) = tmp_path.glob("render_width_lr-*")
    trials = json.loads((root / "trials.json").read_text())
    assert [t["id"] for t in trials] == ["trial-000", "trial-001", "trial-002"]
    assert all(t["status"] == "finished" for t in trials)

    # The first three grid points, each trained with its overrides in its own run directory.
    cfg = load_sweep(sweep_file)
    expected = []
    while len(expected) < 3:
        expected.append(propose(cfg, _finished(expected), seed=0, index=len(expected)))
    assert [t["params"] for t in trials] == expected
    for t in trials:
        run = root / t["id"]
        c = load(_schema("train-renderer"), run / "config.yaml")
        assert c.renderer.base_width == t["params"]["renderer.base_width"]
        assert c.optim.net_lr == pytest.approx(t["params"]["optim.net_lr"])
        assert c.renderer.max_width == 32 and c.texture.size == 32  # the extra layers
        assert (run / "checkpoints" / "last.ckpt").is_file()
        values = read_metric(run, "val/psnr")
        assert values and t["metric_best"] == max(values) and t["metric_last"] == values[-1]

    with (root / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    psnr = [float(r["val/psnr (best)"]) for r in rows]
    assert psnr == sorted(psnr, reverse=True) and len(rows) == 3  # maximize: best first
    assert [int(r["rank"]) for r in rows] == [1, 2, 3]
    by_id = {t["id"]: t for t in trials}
    for r in rows:
        assert float(r["val/psnr (best)"]) == pytest.approx(by_id[r["trial"]]["metric_best"])
        assert int(r["renderer.base_width"]) == by_id[r["trial"]]["params"]["renderer.base_width"]
    md = (root / "summary.md").read_text()
    assert "val/psnr" in md and rows[0]["trial"] in md.split("Best:")[1]

    # Resume: an interrupted trial runs again (its partial directory is kept aside).
    trials[2]["status"] = "interrupted"
    (root / "trials.json").write_text(json.dumps(trials))
    assert main(["sweep", "--resume", str(root), "--count", "1"]) == 0
    again = json.loads((root / "trials.json").read_text())
    assert len(again) == 3 and again[2]["status"] == "finished"
    assert again[2]["params"] == trials[2]["params"]
    assert (root / "trial-002.interrupted").is_dir() and (root / "trial-002" / "logs").is_dir()


def test_online_needs_credentials(tmp_path, monkeypatch, capsys):
    for var in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    f = str(CONF_DIR / "sweeps" / "render_width_lr.yaml")
    assert main(["sweep", f, "--dataset", str(tmp_path)]) == 1
    assert "--offline" in capsys.readouterr().err


def test_online_creates_sweep_and_runs_agent(tmp_path, monkeypatch):
    import wandb

    monkeypatch.setenv("WANDB_API_KEY", "0123456789abcdef")
    calls = {}
    monkeypatch.setattr(wandb, "sweep", lambda cfg, **kw: calls.update(sweep=(cfg, kw)) or "abc")
    monkeypatch.setattr(wandb, "agent", lambda sweep_id, **kw: calls.update(agent=(sweep_id, kw)))
    f = str(CONF_DIR / "sweeps" / "render_width_lr.yaml")
    assert main(["sweep", f, "--dataset", str(tmp_path), "--count", "2", "a=1"]) == 1  # a: unknown
    assert main(["sweep", f, "--dataset", str(tmp_path), "--count", "2", "seed=3"]) == 0
    cfg, kw = calls["sweep"]
    assert kw == {"project": "nvp", "entity": None}
    assert cfg["command"][-3:] == ["seed=3", "trainer.logger.wandb=true", "${args_no_hyphens}"]
    assert cfg["parameters"] == load_sweep(f)["parameters"]
    assert calls["agent"] == ("abc", {"project": "nvp", "entity": None, "count": 2})
    assert os.environ[DATASET_ENV] == str(tmp_path.resolve())  # for the agent's commands


def test_offline_needs_dataset(tmp_path, capsys):
    f = str(CONF_DIR / "sweeps" / "render_width_lr.yaml")
    assert main(["sweep", f, "--offline", "--out", str(tmp_path)]) == 1
    assert "--dataset" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing created


#: Two training steps of either stage (the tiny configs), for the shipped-sweep smoke test.
TWO_STEPS = {
    "train-renderer": TINY,
    "train-a2e": [
        "--config",
        str(CONF_DIR / "a2e" / "tiny.yaml"),
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
    ],
}


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_shipped_sweep_runs_two_steps(path, store, a2e_dataset, tmp_path):
    """Every file in conf/sweeps runs one trial of two training steps offline on CPU."""
    cfg = load_sweep(path)
    stage = train_command(cfg["command"])
    assert stage is not None
    name = stage[1]
    data = a2e_dataset if name == "train-a2e" else store
    args = ["sweep", str(path), "--offline", "--count", "1", "--dataset", str(data)]
    assert main([*args, "--out", str(tmp_path), *TWO_STEPS[name]]) == 0
    (root,) = tmp_path.glob(f"{path.stem}-*")
    (trial,) = json.loads((root / "trials.json").read_text())
    assert trial["status"] == "finished", trial
    ckpt = root / trial["id"] / "checkpoints" / "last.ckpt"
    import torch

    assert torch.load(ckpt, weights_only=False)["global_step"] == 2
