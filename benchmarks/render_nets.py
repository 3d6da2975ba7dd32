"""Renderer U-Nets: parameters, forward and forward+backward time per image, memory.

    python benchmarks/render_nets.py [--size 256] [--widths 16 32 64] [--max-width 256]
                                     [--threads 2] [--repeats 3] [--device cpu]

For each variant (dilated, the paper; strided, the ablation) and base width, in a fresh
subprocess (so the peak resident memory is that configuration's alone):

* parameters (identical for both variants by construction);
* forward time per image (batch 1, ``torch.no_grad``, eval mode) and forward+backward time
  (train mode, loss = mean of the output), the median of ``--repeats`` runs after one warm-up;
* activations: the number of values the convolutions output in one forward pass (MB as
  float32), what training has to keep for the backward pass;
* peak resident set size of the process (``resource.getrusage``, CPU only).

Instance normalisation, 16 input features, RGB out: the renderer network of the paper.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nvp.nets.unet import RenderUNet, UNetConfig, count_parameters, receptive_field


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(conv: str, width: int, max_width: int, size: int, repeats: int, device: str) -> dict:
    """One configuration, in this process."""
    cfg = UNetConfig(conv=conv, base_width=width, max_width=max(max_width, width))
    net = RenderUNet(cfg).to(device)
    x = torch.randn(1, cfg.in_channels, size, size, device=device)

    values = 0

    def hook(_m, _i, out):
        nonlocal values
        values += out.numel()

    handles = [
        m.register_forward_hook(hook) for m in net.modules() if m.__class__.__name__ == "Conv2d"
    ]
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()

    def timed(fn) -> float:
        fn()  # warm-up
        times = []
        for _ in range(repeats):
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    net.eval()

    def forward() -> None:
        with torch.no_grad():
            net(x)

    t_fwd = timed(forward)
    net.train()

    def forward_backward() -> None:
        net.zero_grad(set_to_none=True)
        net(x).mean().backward()

    t_fb = timed(forward_backward)
    if device.startswith("cuda"):
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        "conv": conv,
        "width": width,
        "widths": net.widths,
        "params": count_parameters(net),
        "receptive_field": receptive_field(cfg),
        "forward_s": t_fwd,
        "forward_backward_s": t_fb,
        "activations_mb": values * 4 / 2**20,
        "peak_mb": peak_mb,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", type=int, default=256, help="image side, pixels")
    ap.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64], help="base widths")
    ap.add_argument("--max-width", type=int, default=256, help="UNetConfig.max_width")
    ap.add_argument("--convs", nargs="+", default=["dilated", "strided"])
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--one", nargs=2, metavar=("CONV", "WIDTH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.one:
        conv, width = args.one[0], int(args.one[1])
        r = measure(conv, width, args.max_width, args.size, args.repeats, args.device)
        print(json.dumps(r))
        return

    print(
        f"torch {torch.__version__}, {args.threads} threads, device {args.device}, "
        f"{args.size}x{args.size}, batch 1, instance norm, 16 features in, RGB out, "
        f"max_width {args.max_width}"
    )
    mem = "peak GPU MB" if args.device.startswith("cuda") else "peak RSS MB"
    print(
        f"\n| conv | base width | widths | parameters | RF px | forward s | forward+backward s "
        f"| activations MB | {mem} |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for width in args.widths:
        for conv in args.convs:
            cmd = [sys.executable, __file__, "--one", conv, str(width)]
            cmd += ["--size", str(args.size), "--threads", str(args.threads)]
            cmd += ["--max-width", str(args.max_width)]
            cmd += ["--repeats", str(args.repeats), "--device", args.device]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(
                f"| {r['conv']} | {r['width']} | {'-'.join(map(str, r['widths']))} "
                f"| {r['params']:,} | {r['receptive_field']} | {r['forward_s']:.3f} "
                f"| {r['forward_backward_s']:.3f} | {r['activations_mb']:.0f} "
                f"| {r['peak_mb']:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
