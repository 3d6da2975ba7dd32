"""Extending nvp from outside the package: a new audio feature extractor, a new renderer
network and a new image metric, each one Python file plus one YAML layer in a folder of
their own, used by preprocessing, both trainings, validation, the target, reenactment and
evaluation (no edit to nvp)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from nvp.errors import ConfigError
from nvp.stages import run_stage

EXTRACTOR = '''
"""Frame energy and zero-crossing rate: a two-feature audio extractor."""
from dataclasses import dataclass

import numpy as np


class EnergyZcr:
    @dataclass
    class Config:
        frame_ms: int = 20

    name, dim, rate_hz = "energy_zcr", 2, 50.0

    def __init__(self, cfg):
        self.hop = 16 * cfg.frame_ms  # samples at 16 kHz
        self.rate_hz = 1000.0 / cfg.frame_ms

    def __call__(self, audio):
        n = max(1, len(audio) // self.hop)
        frames = np.resize(audio, n * self.hop).reshape(n, self.hop)
        energy = np.log(np.mean(frames**2, axis=1) + 1e-6)
        zcr = np.mean(np.abs(np.diff(np.sign(frames), axis=1)) > 0, axis=1)
        return np.stack([energy, zcr], axis=1).astype(np.float32)
'''

NETWORK = '''
"""A two-layer convolutional renderer (network 1)."""
from dataclasses import dataclass

from torch import nn


class TwoLayerNet(nn.Module):
    @dataclass
    class Config:
        width: int = 8

    def __init__(self, cfg, options):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(cfg.in_channels, options.width, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(options.width, cfg.out_channels, 3, padding=1),
            nn.Tanh(),
        )

    def forward(self, x):
        return self.net(x)
'''


METRIC = '''
"""Mean absolute difference of horizontal image gradients over the face mask."""
from dataclasses import dataclass

import torch
from torchmetrics import Metric


class EdgeError(Metric):
    @dataclass
    class Config:
        scale: float = 1.0

    def __init__(self, cfg):
        super().__init__()
        self.scale = cfg.scale
        self.add_state("total", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, pred, target, face, mouth=None):
        dp, dt = pred.diff(dim=-1), target.diff(dim=-1)
        m = face[..., 1:].expand_as(dp)
        self.total += ((dp - dt).abs() * m).sum()
        self.count += m.sum()

    def compute(self):
        return self.scale * self.total / self.count.clamp(min=1)
'''


@pytest.fixture(scope="module")
def plugins(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("my_extensions")
    (d / "energy_zcr.py").write_text(textwrap.dedent(EXTRACTOR))
    (d / "two_layer_net.py").write_text(textwrap.dedent(NETWORK))
    (d / "audio.yaml").write_text(
        f"audio:\n  name: {d / 'energy_zcr.py'}:EnergyZcr\n  options:\n    frame_ms: 20\n"
    )
    (d / "renderer.yaml").write_text(
        f"renderer:\n  network: {d / 'two_layer_net.py'}:TwoLayerNet\n  options:\n    width: 6\n"
    )
    (d / "edge_error.py").write_text(textwrap.dedent(METRIC))
    (d / "metric.yaml").write_text(
        f"metrics:\n  edge_error:\n    ref: {d / 'edge_error.py'}:EdgeError\n"
        "    options:\n      scale: 100.0\n"
    )
    return d


def test_extractor_and_network_end_to_end(plugins, talking_head, speech_wav, tmp_path):
    ds = tmp_path / "ds"
    pre = ["crop.size=64", "min_seconds=0.5", "store.shard_frames=16"]
    r = run_stage("preprocess", plugins / "audio.yaml", cli=pre, inputs=[talking_head], out=ds)
    assert not r.failed, r.failed
    run_stage("build-face-model", cli=["n_components=8"], dataset=ds)
    store = ds / "talker.zarr"
    from nvp.data.store import SequenceStore

    st = SequenceStore(store)
    sig = st.attrs["features"]
    assert st["audio_features"].shape[1:] == (16, 2)  # the plugin's two features
    assert sig["name"].endswith("energy_zcr.py:EnergyZcr") and sig["options"] == {"frame_ms": 20}
    assert len(sig["code_sha256"]) == 16

    common = [f"out={tmp_path}", "trainer.max_steps=2", "trainer.accelerator=cpu"]
    a2e = run_stage("train-a2e", "a2e/tiny.yaml", cli=common, dataset=ds)
    render = run_stage(
        "train-renderer",
        "render/tiny.yaml",
        plugins / "renderer.yaml",
        plugins / "metric.yaml",
        cli=[*common, "trainer.max_steps=-1", "trainer.limit_train_batches=2"],
        store=store,
    )
    logged = (render / "logs" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "val/edge_error" in logged and "val/psnr" in logged
    ckpt = torch.load(render / "checkpoints" / "last.ckpt", weights_only=False)
    assert any(k.startswith("renderer.net.0.") for k in ckpt["state_dict"])  # the plugin net
    target = run_stage(
        "make-target",
        out=tmp_path / "T",
        store=store,
        a2e=a2e,
        renderer=render,
    )
    res, tgt = run_stage(
        "reenact",
        overrides={"min_speech_seconds": 0},
        target=target,
        audio=speech_wav,
        out=tmp_path / "say.mp4",
    )
    assert res.n_frames > 10 and type(tgt.renderer.renderer).__name__ == "TwoLayerNet"
    report = run_stage("evaluate", target=target, out=tmp_path / "report")
    assert report["frames"] > 0 and np.isfinite(report["metrics"]["audio"]["psnr"])
    assert report["metrics"]["audio"]["edge_error"] > 0  # the renderer's own metric
    assert "| edge_error |" in (tmp_path / "report" / "report.md").read_text()
    assert json.loads((tmp_path / "report" / "metrics.json").read_text())["frames"] > 0


def test_bad_references_and_options_are_named(plugins, tmp_path):
    from nvp.audio import AudioFeatureConfig, make_extractor

    ref = f"{plugins / 'energy_zcr.py'}:EnergyZcr"
    with pytest.raises(ConfigError, match="frame_msec"):
        make_extractor(AudioFeatureConfig(name=ref, options={"frame_msec": 5}))
    with pytest.raises(ConfigError, match="defines no 'Nope'"):
        make_extractor(AudioFeatureConfig(name=f"{plugins / 'energy_zcr.py'}:Nope"))
    with pytest.raises(ConfigError, match="no such file"):
        make_extractor(AudioFeatureConfig(name=f"{tmp_path / 'missing.py'}:X"))
    with pytest.raises(ConfigError, match="cannot import no_such_module"):
        make_extractor(AudioFeatureConfig(name="no_such_module:X"))
    with pytest.raises(ConfigError, match=r"audio\.options .* are for an extractor named"):
        AudioFeatureConfig(name="mel", options={"x": 1})
    ext = make_extractor(AudioFeatureConfig(name=ref, options={"frame_ms": 10}))
    assert ext.rate_hz == 100.0 and ext(np.zeros(16000, np.float32)).shape == (100, 2)
