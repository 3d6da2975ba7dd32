"""One run that proves nvp's accelerator path and measures it, every figure as a ratio to a
baseline measured in the same run.

    # here (MediaPipe available): the tiny corpus the check trains on (stores travel, small)
    python benchmarks/device_check.py --prepare device_kit/data
    # on the GPU machine (see scripts/device_run.sh), at most ~8 minutes:
    python benchmarks/device_check.py --device cuda --data device_kit/data --out OUT
    # the same script rehearsed on this CPU at tiny sizes (a test runs it), under 2 minutes:
    python benchmarks/device_check.py --device cpu --quick --out OUT

What it does, in order, each part timed and each failure recorded without stopping the rest:

1. ``pytest -m gpu tests/test_gpu.py`` on the device: rasterizer equal to the CPU's,
   renderer forward/backward in bf16 close to fp32, an A2E step equal to the CPU's,
   two-step ``train-renderer`` / ``train-a2e`` with the accelerator, a short reenactment.
2. Renderer training steps/s (batch 1, texture + both U-Nets + losses + Adam) at 256² and
   512², dilated (paper) and strided nets at base widths 16 and 64 (max 8x), in fp32, bf16-mixed,
   bf16 + ``channels_last`` and bf16 + ``torch.compile``; ratios to fp32 and strided/dilated.
3. Reenactment frames/s (the device's frame path: A2E -> map -> raster -> renderer -> H.264)
   at 256² and 512², batch 1 and batched; ratio batched / batch 1. The stores at these sizes
   are made on the spot by resizing the prepared 64-px store (no MediaPipe needed there).
4. A2E training samples/s, paper configuration, DeepSpeech-sized (16 x 29) and
   Whisper-sized (16 x 384) windows; ratio.
5. The renderer's data loader samples/s (0 and 4 workers) against the training step rate.

Writes ``device_check.json`` (everything) and ``device_check.md`` (tables) into ``--out``.
A part that would overrun ``--budget`` seconds is skipped and says so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

#: Full and quick (CPU rehearsal) settings.
FULL = {
    "sizes": [256, 512],
    "widths": [16, 64],
    "steps": 6,
    "compile_sizes": [256],
    "compile_widths": [16],
    "reenact_frames": 96,
    "reenact_batch": 16,
    "a2e_batch": 64,
    "a2e_steps": 30,
    "loader_batches": 24,
    "loader_workers": [0, 4],
}
#: (torch.compile is left out of the quick run: its warm-up alone took 70 s for the tiny
#: strided net on the 2-core CPU the rehearsal was written on.)
QUICK = {
    "sizes": [64],
    "widths": [4],
    "steps": 2,
    "compile_sizes": [],
    "compile_widths": [],
    "reenact_frames": 12,
    "reenact_batch": 6,
    "a2e_batch": 8,
    "a2e_steps": 3,
    "loader_batches": 4,
    "loader_workers": [0, 2],
}


class Budget:
    """Wall-clock budget of the whole check: parts that would overrun are skipped."""

    def __init__(self, seconds: float) -> None:
        self.t0 = time.perf_counter()
        self.seconds = seconds

    @property
    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.t0)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def environment(device: str) -> dict[str, Any]:
    import pytorch_lightning

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": pytorch_lightning.__version__,
        "device": device,
        "cpu_threads": torch.get_num_threads(),
        "machine": platform.machine(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        env.update(
            gpu=p.name,
            gpu_memory_gib=round(p.total_memory / 2**30, 1),
            capability=f"{p.major}.{p.minor}",
            cuda=torch.version.cuda,
            bf16=torch.cuda.is_bf16_supported(),
        )
    return env


# ---------------------------------------------------------------------------------- 1. tests


def run_tests(device: str, data: Path | None, timeout: float) -> dict[str, Any]:
    env = dict(os.environ, NVP_TEST_DEVICE=device, PYTHONDONTWRITEBYTECODE="1")
    if data is not None:
        env["NVP_DEVICE_DATA"] = str(data)
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider"]
    cmd += ["tests/test_gpu.py", "-rA"]
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        out, rc = r.stdout + r.stderr, r.returncode
    except subprocess.TimeoutExpired as exc:
        out, rc = f"timed out after {timeout:.0f} s\n{exc.stdout or ''}", -1
    lines = [x for x in out.splitlines() if x.startswith(("PASSED", "FAILED", "ERROR", "SKIPPED"))]
    return {
        "returncode": rc,
        "seconds": time.perf_counter() - t0,
        "results": lines,
        "passed": sum(x.startswith("PASSED") for x in lines),
        "failed": sum(x.startswith(("FAILED", "ERROR")) for x in lines),
        "tail": out[-3000:] if rc != 0 else "",
    }


# ----------------------------------------------------------------------- 2. renderer steps/s


def render_module(conv: str, width: int, device: str, k: int = 38):
    from omegaconf import OmegaConf

    from nvp.config import load
    from nvp.render.config import RenderConfig
    from nvp.render.module import NeuralRendererModule

    cli = [
        f"renderer.conv={conv}",
        f"renderer.base_width={width}",
        f"renderer.max_width={8 * width}",
        "loss.vgg_weight=0",
    ]
    cfg = load(RenderConfig, "render/cpu.yaml", cli=cli)
    m = NeuralRendererModule(OmegaConf.to_container(cfg), target={"expression_dim": k})
    m.log = lambda *a, **kw: None  # no trainer attached
    return m.to(device)


def render_batch(size: int, device: str, batch: int = 1, k: int = 38) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    uv = torch.rand(batch, size, size, 2, generator=g)
    face = torch.zeros(batch, 1, size, size)
    face[..., size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1
    uv[face[:, 0] == 0] = -1
    mouth = torch.zeros_like(face)
    mouth[..., size // 2 : 5 * size // 8, 3 * size // 8 : 5 * size // 8] = 1
    b = {
        "uv": uv,
        "image": torch.rand(batch, 3, size, size, generator=g) * 2 - 1,
        "face": face,
        "mouth": mouth,
        "expression": torch.randn(batch, k, generator=g),
    }
    return {name: v.to(device) for name, v in b.items()}


def render_step_rate(
    size: int,
    conv: str,
    width: int,
    device: str,
    steps: int,
    *,
    bf16: bool = False,
    channels_last: bool = False,
    compile: bool = False,
) -> dict[str, Any]:
    """Training steps/s of one renderer configuration (batch 1), after warm-up steps."""
    torch.manual_seed(0)
    m = render_module(conv, width, device)
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
    if compile:
        m.renderer = torch.compile(m.renderer)
        m.blender = torch.compile(m.blender)
    opt = m.configure_optimizers()
    opt = opt[0] if isinstance(opt, list | tuple) else opt
    batch = render_batch(size, device)
    if channels_last:
        batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
    dev_type = "cuda" if device.startswith("cuda") else "cpu"

    def step() -> float:
        with torch.autocast(dev_type, dtype=torch.bfloat16, enabled=bf16):
            loss = m._shared_step(batch, "bench")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    t0 = time.perf_counter()
    warm = 3 if compile else 2
    for _ in range(warm):
        loss = step()
    sync(device)
    warm_s = time.perf_counter() - t0
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    n = 0
    while n < steps or time.perf_counter() - t0 < 1.0:
        loss = step()
        n += 1
        if n >= 50 * steps:
            break
    sync(device)
    dt = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None
    return {
        "steps_s": n / dt,
        "ms_step": 1000 * dt / n,
        "warmup_s": warm_s,
        "peak_mib": peak,
        "loss_finite": bool(np.isfinite(loss)),
    }


def render_configs(s: dict) -> list[dict[str, Any]]:
    """The renderer configurations of a run, in order (fp32 first in each group)."""
    variants = [("fp32", {}), ("bf16", {"bf16": True})]
    variants.append(("bf16+channels_last", {"bf16": True, "channels_last": True}))
    out = []
    for size in s["sizes"]:
        for width in s["widths"]:
            for conv in ("dilated", "strided"):
                vs = list(variants)
                if size in s["compile_sizes"] and width in s["compile_widths"]:
                    vs.append(("bf16+compile", {"bf16": True, "compile": True}))
                for name, kw in vs:
                    out.append({"size": size, "conv": conv, "width": width, "variant": name, **kw})
    return out


def _key(c: dict) -> str:
    return f"render {c['size']} {c['conv']} w{c['width']} {c['variant']}"


def render_worker(device: str, s: dict, start: int, out: Path, deadline: float) -> None:
    """Measure the configurations from ``start`` on, one JSON line each into ``out``, until
    ``deadline`` (seconds from now)."""
    t0 = time.perf_counter()
    configs = render_configs(s)
    with out.open("a") as f:
        for i in range(start, len(configs)):
            c = configs[i]
            kw = {k: c[k] for k in ("bf16", "channels_last", "compile") if k in c}
            if time.perf_counter() - t0 > deadline:
                row = {"i": i, "skipped": "time budget"}
            else:
                try:
                    r = render_step_rate(c["size"], c["conv"], c["width"], device, s["steps"], **kw)
                    row = {"i": i, **r}
                    print(f"  {_key(c)}: {r['steps_s']:.2f} steps/s", flush=True)
                except Exception as exc:  # OOM, a compiler failure: recorded, go on
                    row = {"i": i, "error": f"{type(exc).__name__}: {exc}"[:500]}
                    if device.startswith("cuda"):
                        torch.cuda.empty_cache()
            f.write(json.dumps(row) + "\n")
            f.flush()


def render_rates(
    device: str, quick: bool, work: Path, budget: Budget, record: Callable
) -> list[dict]:
    """Renderer training step rates, measured in a child process that is restarted after
    the configuration it crashed on (a kernel that takes the process down, as bf16 +
    channels_last dilated convolutions did on one CPU, costs that row only)."""
    s = QUICK if quick else FULL
    configs = render_configs(s)
    jsonl = work / "render.jsonl"
    jsonl.unlink(missing_ok=True)
    start = 0
    results: dict[int, dict] = {}
    while start < len(configs) and budget.left > 20:
        cmd = [sys.executable, __file__, "--render-worker", str(start), "--device", device]
        cmd += ["--out", str(work), "--deadline", f"{budget.left - 15:.0f}"]
        cmd += ["--quick"] if quick else []
        try:
            rc = subprocess.run(cmd, cwd=REPO, timeout=max(10.0, budget.left)).returncode
        except subprocess.TimeoutExpired:
            rc = -9
        if jsonl.exists():
            for line in jsonl.read_text().splitlines():
                row = json.loads(line)
                results[row["i"]] = row
        done = max(results, default=-1)
        if rc != 0 and done + 1 < len(configs):
            results[done + 1] = {"i": done + 1, "error": f"the process died (exit code {rc})"}
            done += 1
        start = done + 1
    rows = []
    for i, c in enumerate(configs):
        r = results.get(i, {"skipped": "time budget"})
        if "error" in r or "skipped" in r:
            record(_key(c), error=r.get("error"), skipped=r.get("skipped"))
            continue
        rows.append({**r, **{k: c[k] for k in ("size", "conv", "width", "variant")}})
    for r in rows:
        same = [x for x in rows if (x["size"], x["width"]) == (r["size"], r["width"])]
        fp32 = [x for x in same if x["conv"] == r["conv"] and x["variant"] == "fp32"]
        dil = [x for x in same if x["conv"] == "dilated" and x["variant"] == r["variant"]]
        r["vs_fp32"] = r["steps_s"] / fp32[0]["steps_s"] if fp32 else None
        r["vs_dilated"] = r["steps_s"] / dil[0]["steps_s"] if dil else None
        r.pop("i", None)
    return rows


# ------------------------------------------------------------------------------ 3. reenact


def resize_store(src, dst: Path, size: int) -> Path:
    """A consistent copy of a sequence store at another crop size: frames resized (area /
    linear), UV maps and masks by nearest neighbour (background stays -1 / 0), landmarks and
    the pose's scale and translation scaled (they are in crop pixels). For speed
    measurements at sizes the prepared store was not made at."""
    import cv2

    from nvp.data.store import StoreWriter

    k = size / src.size
    w = StoreWriter(dst, input_key=f"resized-{size}")
    n = src.n_frames
    frames = np.stack(
        [cv2.resize(np.asarray(src["frames"][i]), (size, size)) for i in range(n)]
    ).astype(np.uint8)
    nearest = cv2.INTER_NEAREST
    uv = np.stack(
        [
            cv2.resize(
                np.asarray(src["uv"][i]).astype(np.float32), (size, size), interpolation=nearest
            )
            for i in range(n)
        ]
    ).astype(np.float16)
    mask = np.stack(
        [
            cv2.resize(np.asarray(src["mask"][i]), (size, size), interpolation=nearest)
            for i in range(n)
        ]
    ).astype(np.uint8)
    lm = np.asarray(src["landmarks"][...], np.float32) * k
    pose = np.asarray(src["pose"][...], np.float32).copy()
    pose[:, 0] *= k
    pose[:, 4:] *= k
    for name, arr in (("frames", frames), ("uv", uv), ("mask", mask), ("landmarks", lm)):
        w.write(name, arr)
    w.write("pose", pose)
    for name in ("face_flag", "crop", "expression", "audio_features", "audio"):
        w.write(name, np.asarray(src[name][...]))
    w.write("identity", np.asarray(src["identity"][...]), time_chunked=False)
    attrs = dict(src.attrs)
    attrs.pop("complete", None)
    attrs.pop("input_key", None)
    attrs["size"] = size
    attrs["crop"] = {**attrs.get("crop", {}), "size": size}
    w.set_attrs(**attrs)
    return w.finalize()


def reenact_rates(
    device: str, data: Path, work: Path, s: dict, budget: Budget, record: Callable
) -> list[dict]:
    from nvp.data.store import SequenceStore, find_stores
    from nvp.reenact.config import ReenactConfig
    from nvp.reenact.pipeline import reenact_features
    from nvp.reenact.target import load_target
    from nvp.stages import run_stage

    corpus = data / "corpus"
    src = SequenceStore(find_stores(corpus)[0])
    accel = "gpu" if device.startswith("cuda") else "cpu"
    common = [f"trainer.accelerator={accel}", "trainer.devices=1", "trainer.max_steps=1"]
    common.append("trainer.enable_progress_bar=false")
    a2e = run_stage("train-a2e", "a2e/tiny.yaml", cli=[f"out={work}", *common], dataset=corpus)
    rows = []
    for size in s["sizes"]:
        if budget.left < 40:
            record(f"reenact {size}", skipped="time budget")
            continue
        ds = work / f"ds{size}"
        ds.mkdir(parents=True, exist_ok=True)
        (ds / "face_model.npz").write_bytes((corpus / "face_model.npz").read_bytes())
        store = resize_store(src, ds / f"{src.name}.zarr", size)
        cli = [f"out={work / f'r{size}'}", *common, "trainer.limit_val_batches=0", "data.crop=0"]
        render = run_stage("train-renderer", cli=cli, store=store)
        tdir = run_stage(
            "make-target",
            out=work / f"T{size}",
            store=store,
            a2e=a2e,
            renderer=render,
        )
        target = load_target(tdir, device=device)
        st = SequenceStore(store)
        n = s["reenact_frames"]
        idx = np.arange(n) % st.n_frames
        windows = np.asarray(st["audio_features"][...], np.float32)[idx]
        base = None
        for batch in (1, s["reenact_batch"]):
            key = f"reenact {size} batch {batch}"
            try:
                cfg = ReenactConfig(batch=batch, device=device)
                reenact_features(target, windows[:8], work / "warm.mp4", cfg)  # warm-up
                sync(device)
                r = reenact_features(target, windows, work / f"re{size}-{batch}.mp4", cfg)
            except Exception as exc:
                record(key, error=f"{type(exc).__name__}: {exc}"[:500])
                continue
            ms = {k: 1000 * v / n for k, v in r.seconds.items() if k != "total"}
            row = {"size": size, "batch": batch, "frames_s": r.frames_per_s, "ms_frame": ms}
            base = base or r.frames_per_s
            row["vs_batch1"] = r.frames_per_s / base
            rows.append(row)
            print(f"  {key}: {r.frames_per_s:.1f} frames/s", flush=True)
    return rows


# --------------------------------------------------------------------------------- 4. A2E


def a2e_rates(device: str, s: dict) -> list[dict]:
    from omegaconf import OmegaConf

    from nvp.a2e.config import A2EConfig
    from nvp.a2e.module import Audio2ExpressionModule
    from nvp.config import load

    k, n_seq, b = 76, 116, s["a2e_batch"]
    q, _ = torch.linalg.qr(torch.randn(468 * 3, k, generator=torch.Generator().manual_seed(0)))

    class _FaceModel:
        basis = q.reshape(468, 3, k).numpy()
        mouth_weight = np.linspace(0, 1, 468)

    rows = []
    for name, d in (("deepspeech", 29), ("whisper", 384)):
        cfg = load(A2EConfig, "a2e/paper.yaml", cli=[f"net.feature_dim={d}"])
        m = Audio2ExpressionModule(OmegaConf.to_container(cfg), n_seq, k, face_model=_FaceModel())
        m = m.to(device)
        opt = torch.optim.Adam(m.net.parameters(), lr=1e-4)
        batch = {
            "windows": torch.randn(b, 10, 16, d, device=device),
            "expression": torch.randn(b, 3, k, device=device),
            "sequence": torch.randint(0, n_seq, (b,), device=device),
        }

        def step(m=m, opt=opt, batch=batch) -> None:
            expr, inter, _ = m.predict_triplet(batch["windows"], batch["sequence"])
            loss = m.criterion(expr, batch["expression"], inter)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        step()
        sync(device)
        t0 = time.perf_counter()
        for _ in range(s["a2e_steps"]):
            step()
        sync(device)
        rate = s["a2e_steps"] * b / (time.perf_counter() - t0)
        rows.append({"features": name, "dim": d, "batch": b, "samples_s": rate})
        print(f"  a2e {name}: {rate:.0f} samples/s", flush=True)
    rows[1]["vs_deepspeech"] = rows[1]["samples_s"] / rows[0]["samples_s"]
    return rows


# ------------------------------------------------------------------------------ 5. loader


def loader_rates(store: Path, s: dict, step_rate: float | None) -> list[dict]:
    from nvp.render.config import RenderDataConfig
    from nvp.render.data import RendererDataModule

    rows = []
    for workers in s["loader_workers"]:
        cfg = RenderDataConfig(batch_size=4, num_workers=workers)
        dm = RendererDataModule(store, cfg)
        dm.trainer = None
        dm.setup("fit")
        it = iter(dm.train_dataloader())
        next(it)
        t0 = time.perf_counter()
        n = 0
        for _ in range(s["loader_batches"]):
            try:
                n += len(next(it)["frame"])
            except StopIteration:
                it = iter(dm.train_dataloader())
        rate = n / (time.perf_counter() - t0)
        row = {"workers": workers, "samples_s": rate}
        row["vs_training"] = rate / step_rate if step_rate else None
        rows.append(row)
        print(f"  loader {workers} workers: {rate:.0f} samples/s", flush=True)
    return rows


# ----------------------------------------------------------------------------- reporting


def _f(x: Any, fmt: str = ".2f") -> str:
    return "—" if x is None else format(x, fmt)


def markdown(res: dict[str, Any]) -> str:
    env = res["environment"]
    lines = [
        "# nvp device check",
        "",
        f"{env.get('gpu', env['device'])}; torch {env['torch']}, Lightning {env['lightning']}, "
        f"Python {env['python']}; {'quick' if res['quick'] else 'full'} run, "
        f"{res['seconds']:.0f} s.",
        "",
        f"## Tests (`pytest -m gpu`): {res['tests'].get('passed')} passed, "
        f"{res['tests'].get('failed')} failed",
        "",
        *[f"- {x}" for x in res["tests"].get("results", [])],
        "",
        "## Renderer training (batch 1, steps/s)",
        "",
        "| size | net | width | variant | steps/s | ms/step | × fp32 | × dilated | peak MiB "
        "| loss finite |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["render"]:
        lines.append(
            f"| {r['size']}² | {r['conv']} | {r['width']} | {r['variant']} | "
            f"{r['steps_s']:.2f} | {r['ms_step']:.1f} | {_f(r['vs_fp32'])} | "
            f"{_f(r['vs_dilated'])} | {_f(r['peak_mib'], '.0f')} | "
            f"{'yes' if r['loss_finite'] else '**no**'} |"
        )
    lines += [
        "",
        "## Reenactment (device frame path: A2E -> map -> raster -> renderer -> H.264)",
        "",
        "| size | batch | frames/s | × batch 1 | ms/frame: a2e, raster, render, compose, encode |",
        "|---|---|---|---|---|",
    ]
    for r in res["reenact"]:
        ms = r["ms_frame"]
        parts = ", ".join(
            _f(ms.get(k), ".1f") for k in ("a2e", "raster", "render", "compose", "encode")
        )
        lines.append(
            f"| {r['size']}² | {r['batch']} | {r['frames_s']:.1f} | {r['vs_batch1']:.2f} | "
            f"{parts} |"
        )
    lines += ["", "## A2E training (paper config)", "", "| features | D | batch | samples/s |"]
    lines.append("|---|---|---|---|")
    for r in res["a2e"]:
        lines.append(f"| {r['features']} | {r['dim']} | {r['batch']} | {r['samples_s']:.0f} |")
    if len(res["a2e"]) == 2:
        lines.append(f"\nWhisper-sized / DeepSpeech-sized: {res['a2e'][1]['vs_deepspeech']:.2f}")
    lines += [
        "",
        "## Renderer data loader (batch 4)",
        "",
        "| workers | samples/s | × training rate |",
        "|---|---|---|",
    ]
    for r in res["loader"]:
        lines.append(f"| {r['workers']} | {r['samples_s']:.0f} | {_f(r['vs_training'])} |")
    if res["notes"]:
        lines += ["", "## Skipped or failed", ""]
        lines += [f"- {k}: {v}" for k, v in res["notes"].items()]
    return "\n".join(lines) + "\n"


# -------------------------------------------------------------------------------- prepare


def prepare(out: Path) -> Path:
    """The corpus the check trains on: three generated talkers at 64 px with mel features
    and a face model over them (MediaPipe runs here; the stores are a few MB)."""
    from nvp.io.synthetic import make_talking_head
    from nvp.stages import run_stage

    clips = out / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    for seed in range(3):
        p = clips / f"talker{seed}.mp4"
        if not p.exists():
            make_talking_head(p, seconds=2.4, size=128, seed=seed)
    corpus = out / "corpus"
    cli = ["crop.size=64", "audio.name=mel", "store.shard_frames=16", "min_seconds=0.5"]
    cli += ["split.train=0.7", "split.val=0.15", "split.test=0.15"]
    r = run_stage("preprocess", cli=cli, inputs=[clips], out=corpus)
    if r.failed:
        raise SystemExit(f"preparing the corpus failed: {r.failed[0].message}")
    run_stage("build-face-model", cli=["n_components=12"], dataset=corpus)
    import shutil

    shutil.rmtree(clips)
    shutil.rmtree(corpus / "runs", ignore_errors=True)
    return corpus


# ----------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (the CPU rehearsal)")
    ap.add_argument("--out", help="folder for device_check.json / .md")
    ap.add_argument("--data", help="folder made by --prepare (default: prepared now)")
    ap.add_argument("--budget", type=float, help="seconds in all (default 450, quick 110)")
    ap.add_argument("--prepare", metavar="DIR", help="only prepare the corpus into DIR")
    ap.add_argument("--skip-tests", action="store_true", help="measurements only")
    ap.add_argument("--render-worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--deadline", type=float, default=1e9, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.render_worker is not None:
        if args.device.startswith("cuda"):
            torch.backends.cudnn.benchmark = True
            torch.set_float32_matmul_precision("high")
        s = QUICK if args.quick else FULL
        jsonl = Path(args.out) / "render.jsonl"
        render_worker(args.device, s, args.render_worker, jsonl, args.deadline)
        return 0
    if args.prepare:
        print(f"corpus: {prepare(Path(args.prepare))}")
        return 0
    if not args.out:
        ap.error("--out is required")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("device_check: no CUDA device here (use --device cpu)", file=sys.stderr)
        return 2
    s = QUICK if args.quick else FULL
    budget = Budget(args.budget or (110 if args.quick else 450))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"  # the runs, stores and videos of this run only
    if work.exists():
        import shutil

        shutil.rmtree(work)
    work.mkdir()
    data = Path(args.data) if args.data else out / "data"
    if not (data / "corpus" / "face_model.npz").exists():
        prepare(data)
    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")
    notes: dict[str, str] = {}

    def record(key: str, *, skipped: str | None = None, error: str | None = None) -> None:
        notes[key] = f"skipped ({skipped})" if skipped else f"failed: {error}"
        print(f"  {key}: {notes[key]}", flush=True)

    res: dict[str, Any] = {"environment": environment(args.device), "quick": args.quick}
    res.update(tests={}, render=[], reenact=[], a2e=[], loader=[], notes=notes)

    def part(name: str, fn: Callable[[], Any], min_left: float) -> Any:
        if budget.left < min_left:
            record(name, skipped="time budget")
            return None
        print(f"== {name} ({budget.left:.0f} s left)", flush=True)
        t0 = time.perf_counter()
        try:
            return fn()
        except Exception as exc:
            record(name, error=f"{type(exc).__name__}: {exc}"[:500])
            traceback.print_exc()
            return None
        finally:
            res.setdefault("part_seconds", {})[name] = time.perf_counter() - t0

    if not args.skip_tests:
        share = 0.3 * budget.seconds
        res["tests"] = part("tests", lambda: run_tests(args.device, data, share), 30) or {}
    res["a2e"] = part("a2e", lambda: a2e_rates(args.device, s), 15) or []
    res["render"] = (
        part("render", lambda: render_rates(args.device, args.quick, work, budget, record), 20)
        or []
    )
    res["reenact"] = (
        part("reenact", lambda: reenact_rates(args.device, data, work, s, budget, record), 40) or []
    )
    base = next(
        (
            r["steps_s"]
            for r in res["render"]
            if r["conv"] == "strided" and r["variant"] == "fp32" and r["size"] == s["sizes"][0]
        ),
        None,
    )
    stores = sorted(work.glob(f"ds{s['sizes'][0]}/*.zarr"))
    if stores:
        res["loader"] = part("loader", lambda: loader_rates(stores[0], s, base), 10) or []
    else:
        record("loader", skipped="no resized store (the reenactment part did not run)")
    res["seconds"] = time.perf_counter() - budget.t0
    (out / "device_check.json").write_text(json.dumps(res, indent=2, default=str))
    (out / "device_check.md").write_text(markdown(res))
    print(markdown(res))
    failed = res["tests"].get("failed", 0) or res["tests"].get("returncode", 0) not in (0, None)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
