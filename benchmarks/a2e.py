"""Audio2ExpressionNet: parameter counts, training samples/s and inference ms/frame.

    python benchmarks/a2e.py [--device cpu] [--steps 200]

* Parameters of the authors' setting (D = 29, 116 training sequences, K = 76) for the
  paper and the release configurations.
* Training throughput of the paper configuration: the LightningModule's own training
  computation (triplet forward, vertex-space loss with the temporal term, backward, Adam
  step) on batches of 16 samples, for D = 29 (DeepSpeech), 80 (mel) and 384 (Whisper).
* Inference: a whole sequence through ``sequence_forward`` (per-frame net once per frame,
  filter windows gathered), ms per frame, and the latency of one frame (batch 1).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omegaconf import OmegaConf

from nvp.a2e.config import A2EConfig
from nvp.a2e.module import Audio2ExpressionModule
from nvp.config import load
from nvp.nets.audio2expression import (
    Audio2ExpressionNet,
    count_parameters,
    release_config,
)


def module_for(d: int, n_seq: int, k: int, device: str) -> Audio2ExpressionModule:
    cfg = load(A2EConfig, "a2e/paper.yaml", cli=[f"net.feature_dim={d}"])
    q, _ = torch.linalg.qr(torch.randn(468 * 3, k))

    class _FM:  # the module only needs the basis and mouth weights
        basis = q.reshape(468, 3, k).numpy()
        mouth_weight = torch.rand(468).numpy()

    m = Audio2ExpressionModule(OmegaConf.to_container(cfg), n_seq, k, face_model=_FM())
    return m.to(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    dev = args.device
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {dev}")

    paper = load(A2EConfig, "a2e/paper.yaml", cli=["net.feature_dim=29"]).net
    for name, cfg in (("paper", OmegaConf.to_object(paper)), ("release", release_config(29))):
        net = Audio2ExpressionNet(cfg, n_sequences=116, expression_dim=76)
        print(f"parameters ({name} config, D=29, 116 sequences, K=76): {count_parameters(net):,}")

    print(
        "\n| D | batch | training samples/s | inference ms/frame (sequence) "
        "| latency ms (1 frame) |"
    )
    print("|---|---|---|---|---|")
    for d in (29, 80, 384):
        m = module_for(d, 116, 20, dev)
        opt = torch.optim.Adam(m.net.parameters(), lr=1e-4)
        B = 16
        batch = {
            "windows": torch.randn(B, 10, 16, d, device=dev),
            "expression": torch.randn(B, 3, 20, device=dev),
            "sequence": torch.randint(0, 116, (B,), device=dev),
        }

        def step(m=m, opt=opt, batch=batch):
            expr, inter, _ = m.predict_triplet(batch["windows"], batch["sequence"])
            loss = m.criterion(expr, batch["expression"], inter)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()

        for _ in range(10):
            step()
        t0 = time.perf_counter()
        for _ in range(args.steps):
            step()
        sps = args.steps * B / (time.perf_counter() - t0)
        net = m.net.eval()
        feats = torch.randn(2000, 16, d, device=dev)
        with torch.no_grad():
            net.sequence_forward(feats[:100], sequence=0)
            t0 = time.perf_counter()
            net.sequence_forward(feats, sequence=0)
            seq_ms = (time.perf_counter() - t0) / len(feats) * 1000
            one = torch.randn(1, 8, 16, d, device=dev)
            seq = torch.zeros(1, dtype=torch.int64, device=dev)
            for _ in range(5):
                net(one, sequence=seq)
            t0 = time.perf_counter()
            for _ in range(50):
                net(one, sequence=seq)
            lat = (time.perf_counter() - t0) / 50 * 1000
        print(f"| {d} | {B} | {sps:,.0f} | {seq_ms:.3f} | {lat:.2f} |")


if __name__ == "__main__":
    main()
