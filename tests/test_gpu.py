"""The accelerator path: rasterizer, renderer in bf16, A2E step, two-step trainings and a short
reenactment on the device (``pytest -m gpu``; run by ``benchmarks/device_check.py``).

The device is ``$NVP_TEST_DEVICE`` (default ``cuda``; without CUDA these tests skip, unless
``NVP_TEST_DEVICE=cpu`` runs them on the CPU, as the device check's CPU rehearsal does). The
stores come from ``$NVP_DEVICE_DATA/corpus`` (prepared on a machine with MediaPipe by
``benchmarks/device_check.py --prepare DIR``) or, without it, from the generated corpus of
the fast suite (``a2e_dataset``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def device() -> str:
    dev = os.environ.get("NVP_TEST_DEVICE", "cuda")
    if dev.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip("no CUDA device (set NVP_TEST_DEVICE=cpu to run these on the CPU)")
    return dev


@pytest.fixture(scope="module")
def corpus(request) -> Path:
    given = os.environ.get("NVP_DEVICE_DATA")
    if given:
        return Path(given) / "corpus"
    return request.getfixturevalue("a2e_dataset")


@pytest.fixture(scope="module")
def store(corpus):
    from nvp.data.store import SequenceStore, find_stores

    return SequenceStore(find_stores(corpus)[0])


def _vertices(store, frames: slice) -> np.ndarray:
    from nvp.reenact.pipeline import apply_pose
    from nvp.tracking.face_model import FaceModel

    fm = FaceModel.load(store.path.parent / "face_model.npz")
    identity = np.asarray(store["identity"][...], np.float32)
    shape = fm.expression_vertices(identity, np.asarray(store["expression"][frames], np.float32))
    return apply_pose(shape, np.asarray(store["pose"][frames], np.float32)), fm


def test_rasterizer_on_the_device_equals_cpu(store, device):
    from nvp.raster import render_uv_mask

    verts, fm = _vertices(store, slice(0, 8))
    args = [fm.triangles.astype(np.int64), fm.uv, fm.triangle_labels]
    out = {}
    for dev in ("cpu", device):
        t = [torch.as_tensor(a, device=dev) for a in (verts, *args)]
        uv, mask = render_uv_mask(*t, (store.size, store.size))
        out[dev] = (uv.cpu(), mask.cpu())
    (uv_c, m_c), (uv_d, m_d) = out["cpu"], out[device]
    differ = float((m_c != m_d).float().mean())
    assert differ < 1e-3, differ  # triangle-edge ties only
    both = (m_c > 0) & (m_d > 0) & (m_c == m_d)
    assert float((uv_c - uv_d).abs()[both].max()) < 1e-3


def test_renderer_bf16_close_to_fp32(device):
    """Forward and backward of the CPU default renderer at 128² under bf16 autocast against
    fp32: outputs within a few percent, gradients pointing the same way."""
    from omegaconf import OmegaConf

    from nvp.config import load
    from nvp.render.config import RenderConfig
    from nvp.render.module import NeuralRendererModule

    cfg = load(RenderConfig, "render/cpu.yaml", cli=["loss.vgg_weight=0"])
    torch.manual_seed(0)
    m = NeuralRendererModule(OmegaConf.to_container(cfg), target={"expression_dim": 12})
    m = m.to(device)
    g = torch.Generator().manual_seed(1)
    uv = torch.rand(2, 128, 128, 2, generator=g)
    face = torch.zeros(2, 1, 128, 128)
    face[..., 32:96, 32:96] = 1
    uv[face[:, 0] == 0] = -1
    image = torch.rand(2, 3, 128, 128, generator=g) * 2 - 1
    expr = torch.randn(2, 12, generator=g)
    args = [x.to(device) for x in (uv, image, face, expr)]
    results = {}
    for dt in (None, torch.bfloat16):
        m.zero_grad()
        dev_type = "cuda" if device.startswith("cuda") else "cpu"
        with torch.autocast(dev_type, dtype=dt or torch.float32, enabled=dt is not None):
            out = m(*args)["final"]
            loss = (out.float() - args[1]).abs().mean()
        loss.backward()
        grad = torch.cat([p.grad.flatten() for p in m.parameters() if p.grad is not None])
        results[dt] = (out.float().detach(), grad.float().clone())
    (o32, g32), (o16, g16) = results[None], results[torch.bfloat16]
    assert float((o16 - o32).abs().mean()) < 0.03
    cos = torch.nn.functional.cosine_similarity(g16, g32, dim=0)
    assert cos > 0.95, float(cos)


def test_a2e_step_on_the_device(device):
    """One optimisation step of the paper's A2E net (Whisper-sized input) on the device
    matches the same step on the CPU."""
    from omegaconf import OmegaConf

    from nvp.a2e.config import A2EConfig
    from nvp.a2e.module import Audio2ExpressionModule
    from nvp.config import load

    cfg = OmegaConf.to_container(load(A2EConfig, "a2e/paper.yaml", cli=["net.feature_dim=384"]))
    q, _ = torch.linalg.qr(torch.randn(468 * 3, 12, generator=torch.Generator().manual_seed(0)))

    class _FaceModel:
        basis = q.reshape(468, 3, 12).numpy()
        mouth_weight = np.linspace(0, 1, 468)

    g = torch.Generator().manual_seed(2)
    batch = {
        "windows": torch.randn(8, 10, 16, 384, generator=g),
        "expression": torch.randn(8, 3, 12, generator=g),
        "sequence": torch.randint(0, 4, (8,), generator=g),
    }
    after = {}
    for dev in ("cpu", device):
        torch.manual_seed(3)
        m = Audio2ExpressionModule(cfg, 4, 12, face_model=_FaceModel()).to(dev)
        opt = torch.optim.Adam(m.net.parameters(), lr=1e-3)
        b = {k: v.to(dev) for k, v in batch.items()}
        expr, inter, _ = m.predict_triplet(b["windows"], b["sequence"])
        loss = m.criterion(expr, b["expression"], inter)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert torch.isfinite(loss)
        after[dev] = torch.cat([p.detach().cpu().flatten() for p in m.net.parameters()])
    assert torch.allclose(after["cpu"], after[device], atol=1e-4)


@pytest.fixture(scope="module")
def trained(corpus, store, device, tmp_path_factory) -> dict[str, Path]:
    """Two-step trainings of both stages on the device, and their target."""
    from nvp.stages import run_stage

    out = tmp_path_factory.mktemp("gpu-runs")
    accel = "gpu" if device.startswith("cuda") else "cpu"
    common = [f"trainer.accelerator={accel}", "trainer.devices=1", "trainer.max_steps=2"]
    a2e = run_stage("train-a2e", "a2e/tiny.yaml", cli=[f"out={out}", *common], dataset=corpus)
    render = run_stage(
        "train-renderer", "render/tiny.yaml", cli=[f"out={out}", *common], store=store.path
    )
    target = run_stage(
        "make-target",
        out=out / "T",
        store=store.path,
        a2e=a2e,
        renderer=render,
    )
    return {"a2e": a2e, "render": render, "target": target}


def test_two_step_trainings_on_the_device(trained):
    for stage in ("a2e", "render"):
        ckpt = torch.load(trained[stage] / "checkpoints" / "last.ckpt", weights_only=False)
        assert ckpt["global_step"] == 2, stage
        assert all(
            torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point()
        )


def test_short_reenactment_on_the_device(trained, store, device, tmp_path):
    """The reenactment's frame path (A2E on the store's own audio windows -> map -> raster ->
    renderer -> mp4) on the device; the audio front end (VAD, feature extraction) runs on the
    CPU in any case and is left out."""
    from nvp.io.video import probe
    from nvp.reenact.config import ReenactConfig
    from nvp.reenact.pipeline import reenact_features
    from nvp.reenact.target import load_target

    target = load_target(trained["target"], device=device)
    windows = np.asarray(store["audio_features"][:20], np.float32)
    res = reenact_features(target, windows, tmp_path / "r.mp4", ReenactConfig(batch=8))
    info = probe(res.out)
    assert info.n_frames == 20 and (info.width, info.height) == (store.size, store.size)
    assert res.seconds["render"] > 0 and res.frames_per_s > 0
