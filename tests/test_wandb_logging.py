"""W&B logging: off by default, mode resolution, run config and tags, wandb.finish on every exit."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from nvp.a2e.config import A2EConfig
from nvp.a2e.train import A2E_TAGS
from nvp.cli import main
from nvp.config import CONF_DIR, load, to_object
from nvp.data.store import find_stores
from nvp.render.config import RenderConfig
from nvp.render.train import RENDER_TAGS
from nvp.training import (
    config_tags,
    finish_wandb,
    make_loggers,
    resolve_wandb_mode,
    wandb_api_key_configured,
    wandb_logger_kwargs,
)


@pytest.fixture
def no_wandb_env(monkeypatch, tmp_path):
    """No W&B credentials or mode from the environment; a netrc path that does not exist."""
    for var in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    return tmp_path


def test_off_by_default(tmp_path):
    for schema, yaml in ((RenderConfig, "render/tiny.yaml"), (A2EConfig, "a2e/tiny.yaml")):
        c = to_object(load(schema, yaml))
        assert c.trainer.logger.wandb is False
        assert wandb_logger_kwargs(tmp_path, c.trainer.logger) is None
        (only,) = make_loggers(tmp_path, c.trainer.logger)
        assert type(only).__name__ == "CSVLogger"


def test_mode_resolution(no_wandb_env, monkeypatch):
    assert not wandb_api_key_configured()
    assert resolve_wandb_mode("auto") == "offline"
    assert resolve_wandb_mode("online") == "online"  # explicit modes are kept
    netrc = no_wandb_env / "netrc"
    netrc.write_text("machine example.com login a password b\n")
    monkeypatch.setenv("NETRC", str(netrc))
    assert resolve_wandb_mode("auto") == "offline"  # an entry for another host
    netrc.write_text("machine api.wandb.ai\n  login user\n  password 0123456789abcdef\n")
    assert wandb_api_key_configured() and resolve_wandb_mode("auto") == "online"
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.org")
    assert resolve_wandb_mode("auto") == "offline"  # a self-hosted server without an entry
    monkeypatch.setenv("WANDB_API_KEY", "0123456789abcdef")
    assert resolve_wandb_mode("auto") == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_wandb_mode("auto") == "disabled"
    c = to_object(load(RenderConfig, cli=["trainer.logger.wandb=true"]))
    assert wandb_logger_kwargs(Path("run"), c.trainer.logger) is None  # disabled: no logger


def test_logger_kwargs_config_and_tags(no_wandb_env):
    cfg = load(
        RenderConfig,
        "render/cpu.yaml",
        CONF_DIR / "experiment" / "render_strided.yaml",
        cli=[
            "trainer.logger.wandb=true",
            "trainer.logger.group=ablations",
            "trainer.logger.tags=[mine]",
            "blend=false",
        ],
    )
    c = to_object(cfg)
    tags = ["renderer", *config_tags(cfg, RENDER_TAGS)]
    kw = wandb_logger_kwargs(
        Path("/x/render-20260101-000000"), c.trainer.logger, config=cfg, tags=tags
    )
    assert kw["tags"] == ["renderer", "conv:strided", "norm:instance", "no-blend", "no-vgg", "mine"]
    assert kw["name"] == "render-20260101-000000" and kw["save_dir"] == "/x/render-20260101-000000"
    assert kw["mode"] == "offline" and kw["group"] == "ablations" and kw["project"] == "nvp"
    assert kw["config"]["renderer"]["conv"] == "strided" and kw["config"]["blend"] is False

    c.trainer.logger.auto_tags = False
    assert wandb_logger_kwargs(Path("r"), c.trainer.logger, tags=tags)["tags"] == ["mine"]

    a2e = load(A2EConfig, "a2e/paper.yaml", CONF_DIR / "experiment" / "a2e_no_filter.yaml")
    assert config_tags(a2e, A2E_TAGS) == ["no-filter", "loss:vertex"]
    a2e = load(A2EConfig, "a2e/paper.yaml", cli=["loss.temporal_weight=0", "loss.mouth_factor=1"])
    assert config_tags(a2e, A2E_TAGS) == [
        "filter",
        "loss:vertex",
        "no-temporal-loss",
        "no-mouth-weight",
    ]


def test_finish_on_every_exit(no_wandb_env, monkeypatch):
    import wandb
    from wandb.sdk.wandb_run import Run

    codes = []
    original = Run.finish

    def finish(self, exit_code=None, *args, **kwargs):
        codes.append(exit_code)
        return original(self, exit_code, *args, **kwargs)

    monkeypatch.setattr(Run, "finish", finish)
    d = str(no_wandb_env)
    with finish_wandb():
        wandb.init(mode="offline", dir=d, project="t")
    for exc, code in ((RuntimeError("boom"), 1), (KeyboardInterrupt(), 255), (SystemExit(1), 1)):
        with pytest.raises(type(exc)), finish_wandb():
            wandb.init(mode="offline", dir=d, project="t")
            raise exc
        assert wandb.run is None
        assert codes[-1] == code
    assert codes[0] == 0
    # A run that was active before the block is not ours to finish.
    outer = wandb.init(mode="offline", dir=d, project="t")
    with finish_wandb():
        pass
    assert wandb.run is outer
    outer.finish()


@pytest.fixture(scope="module")
def store(tiny_dataset) -> Path:
    return find_stores(tiny_dataset)[0]


def test_renderer_run_logs_offline(store, tmp_path, no_wandb_env):
    import wandb

    tiny = str(CONF_DIR / "render" / "tiny.yaml")
    args = ["train-renderer", str(store), "--config", tiny, f"out={tmp_path / 'runs'}"]
    args += ["trainer.max_steps=-1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1"]
    args += ["data.max_val_frames=2", "trainer.logger.wandb=true", "trainer.logger.tags=[unit]"]
    assert main(args) == 0
    assert wandb.run is None  # finished with the training
    (run,) = (tmp_path / "runs").glob("render-*")
    assert (run / "logs" / "metrics.csv").is_file()  # the CSV logger is always there
    (offline,) = run.glob("wandb/offline-run-*")
    (log,) = offline.glob("run-*.wandb")
    wanted = (b"conv:strided", b"renderer", b"unit", b"base_width", b"val/psnr", run.name.encode())
    # protobuf records: strings are stored as they are. W&B's service process writes the
    # file; on a loaded machine the records were seen to land a moment after finish().
    deadline = time.monotonic() + 30
    while not all(s in log.read_bytes() for s in wanted) and time.monotonic() < deadline:
        time.sleep(0.5)
    data = log.read_bytes()
    for s in wanted:
        assert s in data, s
    assert list(offline.glob("files/media/images/val/samples_*.png"))  # SampleGrid's image
