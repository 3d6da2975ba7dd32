"""The notebooks in ``notebooks/``: committed with stripped outputs, and executed end to end.

The execution test runs ``quickstart.ipynb`` (the small demo pipeline, into a temporary folder
given by ``NVP_NOTEBOOK_OUT``), then ``evaluation.ipynb`` on the report that run wrote
(``NVP_REPORT_DIR``), so the two share one demo run (about a minute on a laptop CPU). The
kernel is the ``python3`` kernel of the interpreter running the tests (ipykernel installed in
the project's venv); a cell of each notebook prints ``sys.prefix``, checked here.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NB_DIR = REPO / "notebooks"
NOTEBOOKS = ("quickstart.ipynb", "evaluation.ipynb")
#: Seconds one cell may run (the quickstart's demo cell is the long one).
CELL_TIMEOUT = 600


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_committed_stripped(name):
    """No outputs, no execution counts: the notebooks are committed clean."""
    nb = json.loads((NB_DIR / name).read_text())
    assert nb["nbformat"] == 4
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], f"{name}: cell {i} has outputs"
            assert cell["execution_count"] is None, f"{name}: cell {i} has an execution count"
        assert "attachments" not in cell, f"{name}: cell {i} has attachments"


def _tagged(nb, tag: str):
    cells = [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"no single cell tagged {tag!r}"
    return cells[0]


def _mimes(cell) -> set[str]:
    return {m for o in cell.outputs for m in o.get("data", {})}


def _stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stdout")


def _execute(name: str, tmp: Path, env: dict[str, str], probe: str):
    """Execute notebook ``name`` (kernel cwd: notebooks/) with ``env`` set, plus one extra
    cell ``probe`` appended at the end (its stdout is returned); saves the executed copy to
    ``tmp`` for inspection."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NB_DIR / name, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(probe))
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(NB_DIR)}},
    )
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)  # the kernel process inherits the environment at its start
        client.execute()
    nbformat.write(nb, tmp / f"executed-{name}")
    return nb, _stdout(nb.cells[-1])


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Both notebooks executed, sharing one demo run."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (the demo's text-to-speech; apt install espeak-ng)")
    pytest.importorskip("nbclient", reason="nbclient not installed (requirements/dev.txt)")
    pytest.importorskip("ipykernel", reason="ipykernel not installed (requirements/dev.txt)")
    tmp = tmp_path_factory.mktemp("notebooks")
    out = tmp / "demo"
    env = {
        "NVP_NOTEBOOK_OUT": str(out),
        "NVP_NOTEBOOK_SIZE": "48",
        "NVP_NOTEBOOK_A2E_EPOCHS": "8",
        "NVP_NOTEBOOK_RENDER_EPOCHS": "3",
        "NVP_REPORT_DIR": str(out / "report"),
        "MPLBACKEND": "Agg",  # the notebooks display figures as PNG images on any backend
        "TQDM_DISABLE": "1",
    }
    probe = "import json, sys\nprint(json.dumps({'prefix': sys.prefix, 'times': times}))"
    quick, quick_probe = _execute("quickstart.ipynb", tmp, env, probe)
    probe = (
        "import json, sys\nprint(json.dumps({'prefix': sys.prefix, 'metrics': metrics, "
        "'rows': {k: len(v) for k, v in per_frame.items()}, 'report': str(REPORT)}))"
    )
    evaluation, eval_probe = _execute("evaluation.ipynb", tmp, env, probe)
    return {
        "out": out,
        "quickstart": (quick, json.loads(quick_probe)),
        "evaluation": (evaluation, json.loads(eval_probe)),
    }


def test_quickstart_runs_the_demo(executed):
    nb, probe = executed["quickstart"]
    out = executed["out"]
    # the kernel is this interpreter's environment (the project's venv)
    assert Path(probe["prefix"]).resolve() == Path(sys.prefix).resolve()
    assert str(Path(sys.prefix)) in _stdout(_tagged(nb, "setup"))
    # every stage ran and wrote its outputs
    times = probe["times"]
    assert {"preprocess", "train-a2e", "train-renderer", "evaluate"} <= set(times)
    assert all(v > 0 for v in times.values())
    for rel in ("say.mp4", "report/metrics.json", "target/target.json", "dataset/talker0.zarr"):
        assert (out / rel).exists(), rel
    table = "".join(o["data"].get("text/markdown", "") for o in _tagged(nb, "times").outputs)
    assert "train-renderer" in table and "**total**" in table
    assert "splits:" in _stdout(_tagged(nb, "store"))
    for tag in ("frames", "expressions", "say"):
        assert "image/png" in _mimes(_tagged(nb, tag)), f"no image in cell {tag!r}"
    assert "text/html" in _mimes(_tagged(nb, "video"))
    assert str(out / "report") in _stdout(_tagged(nb, "next"))


def test_evaluation_reads_the_report(executed):
    nb, probe = executed["evaluation"]
    report = executed["out"] / "report"
    assert Path(probe["prefix"]).resolve() == Path(sys.prefix).resolve()
    assert Path(probe["report"]) == report
    # the metrics the notebook read back are metrics.json's (compared as JSON: NaN != NaN)
    on_disk = json.loads((report / "metrics.json").read_text())
    assert json.dumps(probe["metrics"], sort_keys=True) == json.dumps(on_disk, sort_keys=True)
    header = (report / "per_frame.csv").read_text().splitlines()[0].split(",")
    assert probe["rows"] == {k: on_disk["frames"] for k in header}
    # the formatted table shows the values of metrics.json
    table = _tagged(nb, "metrics").outputs
    md = "".join(o["data"].get("text/markdown", "") for o in table)
    text = "".join(o["data"].get("text/plain", "") for o in table)
    for m in ("tracking", "audio"):
        psnr = f"{on_disk['metrics'][m]['psnr']:.2f}"
        assert psnr in md and psnr in text
    sync = _tagged(nb, "sync")
    assert "ground truth" in "".join(
        o["data"].get("text/plain", "") for o in sync.outputs if "data" in o
    )
    for tag in ("bars", "per_frame", "side_by_side"):
        assert "image/png" in _mimes(_tagged(nb, tag)), f"no image in cell {tag!r}"
    assert "text/markdown" in _mimes(_tagged(nb, "report_md"))
