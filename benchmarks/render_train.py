"""Neural renderer training iterations/s, peak memory and inference ms/frame.

    python benchmarks/render_train.py [--sizes 256 512] [--convs dilated strided]
                                      [--width 16] [--max-width 128] [--steps 3] [--device cpu]

One full training step of ``NeuralRendererModule`` (texture sampling, renderer U-Net,
erosion, blending U-Net, l1 + masked l1 loss, backward, Adam) on batch 1 at each size,
each configuration in a fresh process so that the peak resident memory (CPU) or the
peak allocated memory (CUDA) belongs to it alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def one(size: int, conv: str, width: int, max_width: int, steps: int, device: str) -> dict:
    import torch
    from omegaconf import OmegaConf

    from nvp.config import load
    from nvp.nets.unet import count_parameters
    from nvp.render.config import RenderConfig
    from nvp.render.module import NeuralRendererModule

    cfg = load(
        RenderConfig,
        "render/cpu.yaml",
        cli=[
            f"renderer.conv={conv}",
            f"renderer.base_width={width}",
            f"renderer.max_width={max_width}",
            "loss.vgg_weight=0",
        ],
    )
    k = 38  # expression coefficients (the dynamic texture's input)
    m = NeuralRendererModule(OmegaConf.to_container(cfg), target={"expression_dim": k}).to(device)
    opt = m.configure_optimizers()
    g = torch.Generator().manual_seed(0)
    uv = torch.rand(1, size, size, 2, generator=g)
    face = torch.zeros(1, 1, size, size)
    face[..., size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1
    uv[face[:, 0] == 0] = -1
    batch = {
        "uv": uv.to(device),
        "image": (torch.rand(1, 3, size, size) * 2 - 1).to(device),
        "face": face.to(device),
        "mouth": face.to(device),
        "expression": torch.randn(1, k, generator=g).to(device),
    }

    def step():
        loss = m._shared_step(batch, "train_bench")
        opt.zero_grad()
        loss.backward()
        opt.step()

    m.log = lambda *a, **k: None  # no trainer attached
    step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    it_s = steps / (time.perf_counter() - t0)
    m.eval()
    with torch.no_grad():
        m(batch["uv"], batch["image"], batch["face"], batch["expression"])
        t0 = time.perf_counter()
        for _ in range(steps):
            m(batch["uv"], batch["image"], batch["face"], batch["expression"])
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        infer_ms = (time.perf_counter() - t0) / steps * 1000
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if device.startswith("cuda")
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    params = count_parameters(m.renderer) + count_parameters(m.blender)
    return {
        "size": size,
        "conv": conv,
        "width": width,
        "max_width": max_width,
        "params_nets": params,
        "train_it_s": it_s,
        "infer_ms": infer_ms,
        "peak_mb": peak,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--convs", nargs="+", default=["dilated", "strided"])
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--max-width", type=int, default=128)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        r = one(int(args.one[0]), args.one[1], args.width, args.max_width, args.steps, args.device)
        print(json.dumps(r))
        return
    print(
        "| size | conv | width/max | net params | train it/s (batch 1) | inference ms/frame "
        "| peak MB |"
    )
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        for conv in args.convs:
            out = (
                subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--one",
                        str(size),
                        conv,
                        "--width",
                        str(args.width),
                        "--max-width",
                        str(args.max_width),
                        "--steps",
                        str(args.steps),
                        "--device",
                        args.device,
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            r = json.loads(out)
            print(
                f"| {size}² | {conv} | {r['width']}/{r['max_width']} | {r['params_nets']:,} | "
                f"{r['train_it_s']:.3f} | {r['infer_ms']:.0f} | {r['peak_mb']:.0f} |"
            )


if __name__ == "__main__":
    main()
