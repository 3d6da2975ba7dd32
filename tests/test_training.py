"""Run directories shared by the processes of a distributed run."""

from __future__ import annotations

import os

from nvp.config import PreprocessConfig, load
from nvp.training import RUN_DIR_ENV, shared_run_dir


def test_first_process_creates_and_exports(tmp_path, monkeypatch):
    monkeypatch.delenv(RUN_DIR_ENV, raising=False)
    cfg = load(PreprocessConfig)
    with shared_run_dir(tmp_path, "job", cfg) as run:
        assert os.environ[RUN_DIR_ENV] == str(run)
        assert (run / "config.yaml").is_file()
        # a worker process started now inherits the variable and joins the same directory
        with shared_run_dir(tmp_path, "job", cfg) as same:
            assert same == run
    assert RUN_DIR_ENV not in os.environ
    with shared_run_dir(tmp_path, "job", cfg) as later:
        assert later != run  # a later run in the same process gets a fresh directory


def test_external_launcher_directory(tmp_path, monkeypatch):
    target = tmp_path / "shared"
    monkeypatch.setenv(RUN_DIR_ENV, str(target))
    with shared_run_dir(tmp_path, "job", load(PreprocessConfig)) as run:
        assert run == target and (run / "config.yaml").is_file()
    assert os.environ[RUN_DIR_ENV] == str(target)  # not ours to remove
