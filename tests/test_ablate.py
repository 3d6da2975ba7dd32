"""Ablation layers (conf/experiment/*.yaml) and the study runner (experiments/ablate.py)."""

from __future__ import annotations

import csv
import importlib.util
import math
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from nvp.a2e.config import A2EConfig
from nvp.config import CONF_DIR, dotlist_keys, load, to_object
from nvp.errors import ConfigError
from nvp.render.config import RenderConfig

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted((CONF_DIR / "experiment").glob("*.yaml"))
#: stage prefix -> (schema, default layer of its train command, tiny smoke layer)
STAGES = {
    "a2e": (A2EConfig, "a2e/default.yaml", "a2e/tiny.yaml"),
    "render": (RenderConfig, "render/cpu.yaml", "render/tiny.yaml"),
}


def _module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up while the module executes
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def ablate():
    return _module(REPO / "experiments" / "ablate.py", "_nvp_experiments_ablate")


def _stage(path: Path) -> str:
    return path.stem.split("_", 1)[0]


# ------------------------------------------------------------------------------ the layers


def test_there_are_experiments():
    names = {p.stem for p in EXPERIMENTS}
    assert {"a2e_no_filter", "a2e_mouth_weight_5", "a2e_lambda_5", "a2e_lambda_50"} <= names


@pytest.mark.parametrize("exp", EXPERIMENTS, ids=lambda p: p.stem)
def test_experiment_composes(exp):
    """Every layer has a header, a stage prefix, and composes against its stage's schema on
    top of the train command's default and the tiny config (struct mode: a misspelt key is
    an error); each of its settings ends up in the composed config."""
    lines = exp.read_text().splitlines()
    assert lines and lines[0].startswith("# "), f"{exp.name}: start with a comment header"
    assert _stage(exp) in STAGES, f"{exp.name}: name it a2e_* or render_*"
    schema, default, tiny = STAGES[_stage(exp)]
    cfg = load(schema, default, exp, tiny)
    to_object(cfg)  # value checks (__post_init__)
    layer = OmegaConf.load(exp)
    keys = list(dotlist_keys(layer))
    assert keys, f"{exp.name} changes nothing"
    for k in keys:
        assert OmegaConf.select(cfg, k) == OmegaConf.select(layer, k), k
    # and it is a change: at least one setting differs from the baseline (the default, or
    # the paper's settings for the layers that study them one at a time)
    bases = [load(schema, default, tiny), load(schema, f"{_stage(exp)}/paper.yaml", tiny)]
    assert any(
        OmegaConf.select(base, k) != OmegaConf.select(layer, k) for base in bases for k in keys
    )


def test_misspelt_layer_fails(tmp_path):
    bad = tmp_path / "a2e_typo.yaml"
    bad.write_text("# typo\nloss:\n  mouth_facter: 5.0\n")
    with pytest.raises(ConfigError, match=r"loss\.mouth_facter"):
        load(A2EConfig, "a2e/paper.yaml", bad, "a2e/tiny.yaml")
    bad.write_text("# wrong type\nloss:\n  mouth_factor: lots\n")
    with pytest.raises(ConfigError, match=r"loss\.mouth_factor"):
        load(A2EConfig, "a2e/paper.yaml", bad, "a2e/tiny.yaml")


def _smoke_covered() -> set[Path]:
    """Experiment files that the two-step smoke tests of test_a2e_train.py and
    test_render_train.py already run (their parameter lists)."""
    covered: set[Path] = set()
    for fname, fn in (
        ("test_a2e_train.py", "_configs"),
        ("test_render_train.py", "_render_configs"),
    ):
        mod = _module(Path(__file__).with_name(fname), f"_nvp_cov_{fname[:-3]}")
        for extra in getattr(mod, fn, list)():
            covered |= {Path(a).resolve() for a in extra if str(a).endswith(".yaml")}
    return covered


def test_every_experiment_layer_is_smoke_tested():
    """Each ``conf/experiment/`` layer runs two training steps in a smoke test
    (``test_a2e_train.py`` / ``test_render_train.py`` collect them by glob); a layer outside
    their globs would go untested, so it is named here."""
    covered = _smoke_covered()
    assert len(covered) >= len(EXPERIMENTS) > 20
    assert [e.name for e in EXPERIMENTS if e.resolve() not in covered] == []


# ------------------------------------------------------------------------------ ablate.py


def test_read_metrics_final_and_best(ablate, tmp_path):
    p = tmp_path / "metrics.csv"
    p.write_text(
        "epoch,step,train/loss,val/vertex_rms_mm,val/vertex_rms_mouth_mm,val/mouth_opening_r\n"
        "0,0,5.0,,,\n"
        "0,9,,3.0,4.0,0.1\n"
        "1,19,,2.5,3.0,0.3\n"  # best mouth error
        "2,29,,2.0,3.5,0.2\n"  # final
    )
    stage = ablate._stages()["a2e"]
    m = ablate.read_metrics(p, stage.metrics, stage.monitor)
    assert m["final"] == {
        "val/vertex_rms_mm": 2.0,
        "val/vertex_rms_mouth_mm": 3.5,
        "val/mouth_opening_r": 0.2,
    }
    assert m["best"] == {
        "val/vertex_rms_mm": 2.5,
        "val/vertex_rms_mouth_mm": 3.0,
        "val/mouth_opening_r": 0.3,
    }
    assert m["steps"] == 30 and m["validations"] == 3
    none = ablate.read_metrics(tmp_path / "missing.csv", stage.metrics, stage.monitor)
    assert none["validations"] == 0 and math.isnan(none["final"]["val/vertex_rms_mm"])


def test_summarise_over_seeds(ablate, tmp_path):
    stage = ablate._stages()["render"]
    V, R = ablate.Variant, ablate.RunResult
    variants = [V("baseline", tmp_path), V("render_x", tmp_path, change="renderer.conv=x")]

    def res(name, seed, psnr):
        vals = {m.key: 0.5 for m in stage.metrics} | {"val/psnr": psnr}
        return R(name, seed, tmp_path, 1.0, 10, 1, vals, dict(vals))

    runs = [res("baseline", 0, 20.0), res("baseline", 1, 22.0), res("render_x", 0, 25.0)]
    rows = ablate.summarise(stage, variants, runs)
    assert [r["variant"] for r in rows] == ["baseline", "render_x"]
    assert rows[0]["val/psnr.final.mean"] == 21.0
    assert rows[0]["val/psnr.final.std"] == pytest.approx(math.sqrt(2.0))
    assert math.isnan(rows[1]["val/psnr.final.std"])  # one seed: no std
    assert rows[1]["val/psnr.final.delta"] == 4.0 and rows[1]["val/psnr.best.delta"] == 4.0
    md = ablate.markdown(stage, rows, ["header"])
    assert "21.00 ± 1.41" in md and "+4.00" in md and "PSNR (dB) ↑" in md


def _read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_ablate_end_to_end_and_resume(ablate, a2e_dataset, tmp_path, monkeypatch, capsys):
    """Baseline + an experiment layer + a dataset variant, 2 steps each (1 step per epoch, so
    2 validations); the table has one row per variant with numbers; a rerun reads the finished
    runs instead of training; a rerun with another budget stops."""
    out = tmp_path / "study"
    argv = [
        "a2e_lambda_50",
        "--data",
        str(a2e_dataset),
        "--dataset",
        f"mel_copy={a2e_dataset}",
        "--base",
        "a2e/paper.yaml",
        "a2e/tiny.yaml",
        "--set",
        "data.samples_per_epoch=4",
        "trainer.max_epochs=2",
        "--out",
        str(out),
    ]
    assert ablate.main(argv) == 0
    printed = capsys.readouterr().out
    assert f"table: {out / 'ablation.md'}" in printed
    for f in ("ablation.md", "ablation.csv", "ablation.png", "ablation_runs.csv"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    rows = _read_rows(out / "ablation.csv")
    assert [r["variant"] for r in rows] == ["baseline", "a2e_lambda_50", "mel_copy"]
    for r in rows:
        assert r["n_seeds"] == "1" and float(r["steps"]) == 2
        for k in ("val/vertex_rms_mm", "val/vertex_rms_mouth_mm"):
            for which in ("final", "best"):
                assert math.isfinite(float(r[f"{k}.{which}.mean"])), (r["variant"], k)
                assert math.isfinite(float(r[f"{k}.{which}.delta"]))
    assert rows[1]["change"] == "loss.temporal_weight=50.0"
    # same data, config and seed as the baseline: the same numbers
    assert rows[2]["val/vertex_rms_mm.final.delta"] == "0"
    md = (out / "ablation.md").read_text()
    assert "| **a2e_lambda_50** |" in md and "mouth RMS (mm) ↓" in md
    runs = list((out / "runs").glob("*/seed0/done.json"))
    assert len(runs) == 3

    def no_training(*a, **k):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(ablate, "train_variant", no_training)
    assert ablate.main(argv) == 0
    assert "not trained again" in capsys.readouterr().out
    assert _read_rows(out / "ablation.csv") == rows

    changed = [a.replace("trainer.max_epochs=2", "trainer.max_epochs=3") for a in argv]
    assert ablate.main(changed) == 2
    err = capsys.readouterr().err
    assert "trainer.max_epochs: 2 -> 3" in err and "--force" in err


def test_ablate_command_line_errors(ablate, a2e_dataset, tmp_path, capsys):
    data = ["--data", str(a2e_dataset), "--out", str(tmp_path)]
    assert ablate.main(["a2e_no_filter", "render_strided", *data]) == 2
    assert "several stages" in capsys.readouterr().err
    assert ablate.main(["a2e_no_such_thing", *data]) == 2
    assert "unknown experiment" in capsys.readouterr().err
    assert ablate.main(["a2e_no_filter", *data, "--set", "seed=3"]) == 2
    assert "--seeds" in capsys.readouterr().err
    assert ablate.main(["a2e_no_filter", *data, "--set", "loss.mouth_facter=3"]) == 2
    assert "loss.mouth_facter" in capsys.readouterr().err
    assert ablate.main([*data, "--dataset", "no_path"]) == 2
    assert "VARIANT=PATH" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing trained, nothing written


def test_ablate_lip_columns(ablate, a2e_dataset, tmp_path):
    """``ablate.py --lips STORE --voices ...``: each A2E run gets the lip-motion measures of its
    last checkpoint (cached in the run), and the table a lip-motion section."""
    import json

    from nvp.io.audio import write_wav
    from nvp.io.synthetic import speech_audio

    voice = tmp_path / "voice.wav"
    write_wav(voice, speech_audio(2.0, 16000, seed=3), 16000)
    out = tmp_path / "study"
    argv = [
        "--data",
        str(a2e_dataset),
        "--base",
        "a2e/default.yaml",
        "a2e/tiny.yaml",
        "--set",
        "data.samples_per_epoch=4",
        "trainer.max_epochs=1",
        "--lips",
        str(a2e_dataset / "talker1.zarr"),
        "--voices",
        str(voice),
        "--out",
        str(out),
    ]
    assert ablate.main(argv) == 0
    (run,) = list((out / "runs" / "baseline" / "seed0").glob("baseline-*"))
    cached = json.loads((run / "lips.json").read_text())["measures"]
    assert -1 <= cached["own.r0"] <= 1 and cached["voices.min"] > 0
    assert cached["voice.voice.wav"] == cached["voices.min"]
    md = (out / "ablation.md").read_text()
    assert "## Lip motion" in md and "| **baseline** |" in md.split("## Lip motion")[1]
    assert ablate.main([*argv[:-2], "--lips", str(tmp_path / "no.zarr"), *argv[-2:]]) == 2


def test_declared_metrics_become_columns(ablate, tmp_path):
    from omegaconf import OmegaConf

    (tmp_path / "edge.py").write_text(
        "import torch\nfrom torchmetrics import Metric\n\n\n"
        "class Edge(Metric):\n    higher_is_better = False\n\n"
        "    def __init__(self, cfg):\n        super().__init__()\n"
        "        self.add_state('x', torch.tensor(0.0))\n\n"
        "    def update(self, pred, target, face, mouth=None):\n        pass\n\n"
        "    def compute(self):\n        return self.x\n"
    )
    stage = ablate._stages()["render"]
    cfg = OmegaConf.create({"metrics": {"edge": {"ref": f"{tmp_path / 'edge.py'}:Edge"}}})
    grown = ablate.with_declared_metrics(stage, cfg)
    assert grown.metrics[: len(stage.metrics)] == stage.metrics
    (edge,) = grown.metrics[len(stage.metrics) :]
    assert (edge.key, edge.higher_is_better) == ("val/edge", False)
    assert ablate.with_declared_metrics(stage, OmegaConf.create({"metrics": {}})) is stage
