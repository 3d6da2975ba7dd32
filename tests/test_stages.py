"""The stage table (``nvp.stages``): one definition per stage that the command line, the demo,
sweeps, ablations, experiments and benchmarks all run through; no import cycles."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

from nvp.cli import AFTER_INTERRUPT, build_parser
from nvp.config import CONF_DIR
from nvp.data.store import find_stores
from nvp.errors import ConfigError
from nvp.stages import STAGES, TRAINING, parse_command, run_stage

REPO = Path(__file__).resolve().parents[1]


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the modules of the package it imports (at any depth: lazy imports inside
    functions count too, as they make cycles all the same)."""
    root = package.parent
    modules = {_module_name(f, root): f for f in package.rglob("*.py")}

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, f in modules.items():
        for node in ast.walk(ast.parse(f.read_text())):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for n in names:
                target = owner(n) if n.split(".")[0] == package.name else None
                if target and target != mod:
                    graph[mod].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_inside_nvp():
    graph = import_graph(REPO / "nvp")
    assert len(graph) > 50 and "nvp.stages" in graph
    assert cycles(graph) == []


def test_only_the_command_line_imports_the_command_line():
    """Library code, scripts and benchmarks run stages, never the ``nvp`` parser."""
    users = []
    for folder in ("nvp", "experiments", "benchmarks"):
        for f in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(f.read_text())):
                mods = []
                if isinstance(node, ast.ImportFrom) and node.module:
                    mods = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                elif isinstance(node, ast.Import):
                    mods = [a.name for a in node.names]
                if "nvp.cli" in mods and f.name != "__main__.py":
                    users.append(str(f.relative_to(REPO)))
    assert users == []


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_stage_is_complete(name):
    st = STAGES[name]
    fn = st.runner.partition(":")
    runner = getattr(__import__(fn[0], fromlist=[fn[2]]), fn[2])
    params = inspect.signature(runner).parameters
    assert set(st.inputs) <= set(params), (st.inputs, list(params))
    if st.schema:
        assert "cfg" in params
        st.config()  # the schema with its default layer loads and validates
        if st.default_config:
            assert (CONF_DIR / st.default_config).is_file()
        if st.tiny_config:
            st.config(st.tiny_config)
    else:
        with pytest.raises(TypeError, match="has no settings"):
            st.config()
    # the command line has the stage, and says what an interruption leaves
    choices = build_parser()._subparsers._group_actions[0].choices
    assert name in choices and name in AFTER_INTERRUPT
    if st.monitor:
        assert st.monitor in st.metrics and st.tag and st.ablation_prefix in TRAINING


def test_parse_command():
    st, inputs, yaml, over = parse_command(
        ["train-renderer", "data/x.zarr", "--config", "a.yaml", "--config=b.yaml", "seed=3"]
    )
    assert st is STAGES["train-renderer"]
    assert (inputs, yaml, over) == ({"store": "data/x.zarr"}, ["a.yaml", "b.yaml"], ["seed=3"])
    with pytest.raises(ConfigError, match="option --bogus not supported"):
        parse_command(["train-a2e", "d", "--bogus"])
    with pytest.raises(ConfigError, match="takes 1 inputs"):
        parse_command(["train-a2e", "d", "e"])
    with pytest.raises(ConfigError, match="not a stage command"):
        parse_command(["trian-a2e", "d"])


class _Monitors(Callback):
    def __init__(self) -> None:
        self.monitors: list[str | None] = []

    def on_train_start(self, trainer, module) -> None:
        self.monitors = [c.monitor for c in trainer.callbacks if isinstance(c, ModelCheckpoint)]


def test_training_monitors_the_stage_metric(tiny_dataset, tmp_path):
    """The best checkpoint of a run follows the stage table's monitor."""
    probe = _Monitors()
    store = find_stores(tiny_dataset)[0]
    cli = [f"out={tmp_path}", "trainer.max_steps=1"]
    run = run_stage("train-renderer", "render/tiny.yaml", cli=cli, store=store, callbacks=[probe])
    assert probe.monitors == [None, STAGES["train-renderer"].monitor.key]
    assert (run / "checkpoints" / "last.ckpt").is_file()
