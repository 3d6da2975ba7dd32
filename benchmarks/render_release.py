"""nvp's dilated renderer U-Net against the authors' release net, per training step.

    python benchmarks/render_release.py [--size 256] [--widths 16 64] [--threads 2]
                                        [--repeats 3] [--device cpu] [--variants ...]

Both nets are built in one process and timed alternately on the same input: one Adam step
(forward, loss = mean |output|, backward, update) on batch 1 at ``--size``², 16 input
features, RGB out. The median of ``--repeats`` steps after one warm-up step is reported,
with the parameter count and nvp's time as a multiple of the release's (``speed`` > 1: nvp
is faster).

The release net is rebuilt here from its layer list in ``METHOD.md`` ("Neural face
rendering"; the authors' code itself is not copied): the nested skip blocks of
``UNET_5_level_DC`` with dilations 16, 8, 4, 2, 1 from the outermost (widest image, fewest
features) to the innermost block, no encoder normalisation (dropped in the release by a bug),
``InstanceNorm2d(affine=False)`` after the decoder convolutions and convolution biases. Its
parameter count (0.59 M at width 16, 9.38 M at 64) checks the rebuild.

Variants of nvp's net (``--variants``): ``nvp`` (``decoder="halving"``, the default),
``nvp-wide`` (``decoder="wide"``), and either with ``-cl`` appended (``channels_last`` memory
format for the net and its input).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nvp.nets.unet import RenderUNet, UNetConfig, count_parameters


class _ReleaseBlock(nn.Module):
    """One nested skip block of the release net: ``cat([x, up(sub(down(x)))])``.

    The outermost block returns ``up(sub(down(x)))`` (no concatenation)."""

    def __init__(
        self,
        c_in: int,
        c_mid: int,
        c_out: int,
        dilation: int,
        sub: nn.Module | None,
        sub_out: int,
        outermost: bool = False,
    ) -> None:
        super().__init__()
        down = [nn.Conv2d(c_in, c_mid, 3, padding=dilation, dilation=dilation)]
        if not outermost:
            down.insert(0, nn.LeakyReLU(0.2))
        self.down = nn.Sequential(*down)
        self.sub = sub
        up: list[nn.Module] = [
            nn.ReLU(),
            nn.Conv2d(sub_out, c_out, 3, padding=1),
            nn.LeakyReLU(0.2),
        ]
        up.append(nn.Tanh() if outermost else nn.InstanceNorm2d(c_out))
        self.up = nn.Sequential(*up)
        self.outermost = outermost

    def forward(self, x: Tensor) -> Tensor:
        h = self.down(x)
        if self.sub is not None:
            h = self.sub(h)
        h = self.up(h)
        return h if self.outermost else torch.cat([x, h], dim=1)


def release_unet(width: int, in_channels: int = 16, out_channels: int = 3) -> nn.Module:
    """The release's ``UNET_5_level_DC`` from the layer list in METHOD.md.

    Args:
        width: base width w (release default 64).
        in_channels: neural-texture features (16).
        out_channels: RGB (3).

    Returns:
        ``(B, in_channels, H, W) -> (B, out_channels, H, W)`` module, any H, W.
    """
    w = width
    inner = _ReleaseBlock(8 * w, 8 * w, 8 * w, 1, None, 8 * w)
    b4 = _ReleaseBlock(4 * w, 8 * w, 4 * w, 2, inner, 16 * w)
    b3 = _ReleaseBlock(2 * w, 4 * w, 2 * w, 4, b4, 8 * w)
    b2 = _ReleaseBlock(w, 2 * w, w, 8, b3, 4 * w)
    return _ReleaseBlock(in_channels, w, out_channels, 16, b2, 2 * w, outermost=True)


def nvp_unet(width: int, decoder: str = "halving") -> nn.Module:
    """nvp's dilated renderer net at base width ``width`` (max width 8 x, as the release)."""
    return RenderUNet(
        UNetConfig(base_width=width, max_width=8 * width, levels=5, conv="dilated", decoder=decoder)
    )


def step_time(net: nn.Module, x: Tensor, device: str) -> float:
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    t0 = time.perf_counter()
    out = net(x)
    loss = out.float().abs().mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--widths", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--variants", nargs="+", default=["nvp", "nvp-wide", "nvp-cl"])
    ap.add_argument("--json", default=None, help="also write the rows here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    for w in args.widths:
        nets = {"release": release_unet(w)}
        for v in args.variants:
            net = nvp_unet(w, "wide" if "-wide" in v else "halving")
            if v.endswith("-cl"):
                net = net.to(memory_format=torch.channels_last)
            nets[v] = net
        x = torch.randn(1, 16, args.size, args.size, device=args.device)
        times: dict[str, list[float]] = {k: [] for k in nets}
        for name, net in nets.items():
            net.to(args.device).train()
            xi = x.contiguous(memory_format=torch.channels_last) if name.endswith("-cl") else x
            step_time(net, xi, args.device)  # warm-up
        for _ in range(args.repeats):  # alternate, so that drifts hit every net alike
            for name, net in nets.items():
                xi = x.contiguous(memory_format=torch.channels_last) if name.endswith("-cl") else x
                times[name].append(step_time(net, xi, args.device))
        base = statistics.median(times["release"])
        for name, net in nets.items():
            t = statistics.median(times[name])
            row = {
                "width": w,
                "net": name,
                "params_M": round(count_parameters(net) / 1e6, 3),
                "step_s": round(t, 3),
                "speed_vs_release": round(base / t, 2),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    print()
    print(f"| width | net | parameters | s / step ({args.size}², batch 1) | speed vs release |")
    print("|---|---|--:|--:|--:|")
    for r in rows:
        print(
            f"| {r['width']} | {r['net']} | {r['params_M']} M | {r['step_s']} | "
            f"{r['speed_vs_release']}× |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
