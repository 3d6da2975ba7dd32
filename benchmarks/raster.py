"""Benchmark of nvp.raster on a face-like mesh (run: ``python benchmarks/raster.py``).

The test mesh is a 22 x 21 vertex grid (462 vertices, 840 triangles, close to MediaPipe's
468 / 898) bent into an ellipse that covers about 40 % of the frame, with a dome-shaped depth
(closest at the centre) and a small random motion per frame. Prints the median time per frame
of ``rasterize`` and of the full ``render_uv_mask`` (UV map + label mask) for 256² and 512²
frames at batch sizes 1 and 8, on the CPU (default thread count, or ``--threads``) and on CUDA
when available.

The CPU path allocates many short-lived multi-megabyte tensors; where page faults are expensive
(some virtual machines), keeping freed memory in the process, e.g. with glibc's
``MALLOC_MMAP_THRESHOLD_=1000000000 MALLOC_TRIM_THRESHOLD_=1000000000``, can make it about
twice as fast.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from functools import partial

import torch

from nvp.raster import rasterize, render_uv_mask


def face_like_mesh(size: int, batch: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Return ``verts (B, V, 3)`` in pixels, ``faces (F, 3)``, ``uv (V, 2)``, ``labels (F,)``."""
    nx, ny = 21, 22
    u = torch.linspace(0.0, 1.0, nx)
    v = torch.linspace(0.0, 1.0, ny)
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    uv = torch.stack([uu, vv], -1).reshape(-1, 2)
    # Square -> disc (elliptical grid mapping), then an ellipse covering ~40% of the frame.
    sx, sy = uv[:, 0] * 2 - 1, uv[:, 1] * 2 - 1
    dx = sx * torch.sqrt(1 - sy**2 / 2)
    dy = sy * torch.sqrt(1 - sx**2 / 2)
    a, b = 0.33 * size, 0.39 * size  # pi * a * b ~= 0.40 * size**2
    r2 = (dx**2 + dy**2).clamp(max=1.0)
    z = -torch.sqrt(1 - r2) * 0.3 * size  # dome: the centre is closest to the camera
    base = torch.stack([size / 2 + a * dx, size / 2 + b * dy, z], -1)
    faces = []
    for r in range(ny - 1):
        for c in range(nx - 1):
            p, q = r * nx + c, r * nx + c + 1
            s, t = (r + 1) * nx + c, (r + 1) * nx + c + 1
            faces += [[p, q, t], [p, t, s]]
    faces_t = torch.tensor(faces, dtype=torch.int64)
    labels = torch.ones(len(faces), dtype=torch.uint8)
    centre = faces_t.shape[0] // 2
    labels[centre - 40 : centre + 40] = 2  # a "mouth" band
    g = torch.Generator().manual_seed(seed)
    frames = []
    for _ in range(batch):
        angle = (torch.rand((), generator=g).item() - 0.5) * 0.2
        rot = torch.tensor(
            [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
        )
        shift = (torch.rand(2, generator=g) - 0.5) * 0.05 * size
        xy = (base[:, :2] - size / 2) @ rot.T + size / 2 + shift
        frames.append(torch.cat([xy, base[:, 2:]], 1))
    return torch.stack(frames), faces_t, uv, labels


def median_ms(fn: Callable[[], object], sync: Callable[[], None], repeats: int) -> float:
    fn()  # warm-up
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per setting")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, CPU threads: {torch.get_num_threads()}")
    print(f"{'device':<6} {'size':>5} {'batch':>5} {'rasterize':>16} {'render_uv_mask':>18}")
    for device in devices:
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        for size in (256, 512):
            for batch in (1, 8):
                verts, faces, uv, labels = face_like_mesh(size, batch)
                verts, faces = verts.to(device), faces.to(device)
                uv, labels = uv.to(device), labels.to(device)
                shape = (size, size)
                rast = partial(rasterize, verts, faces, shape)
                full = partial(render_uv_mask, verts, faces, uv, labels, shape)
                t_rast = median_ms(rast, sync, args.repeats)
                t_full = median_ms(full, sync, args.repeats)
                print(
                    f"{device:<6} {size:>5} {batch:>5} {t_rast / batch:>11.2f} ms/f "
                    f"{t_full / batch:>13.2f} ms/f"
                )
    verts, faces, uv, labels = face_like_mesh(256, 1)
    _, mask = render_uv_mask(verts, faces, uv, labels, (256, 256))
    print(
        f"mesh: {verts.shape[1]} vertices, {faces.shape[0]} triangles, "
        f"covers {float((mask > 0).float().mean()) * 100:.0f}% of the frame"
    )


if __name__ == "__main__":
    main()
