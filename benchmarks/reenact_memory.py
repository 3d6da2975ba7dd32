"""Memory of reenactment on long audio: the audio check and audio -> expressions, streamed.

    python benchmarks/reenact_memory.py TARGET_DIR [--minutes 60] [--chunk 10]

Writes ``--minutes`` of speech-like audio (a FLAC file), then runs the pre-pass (decode,
peak, voice activity) and the chunked audio -> features -> Audio2ExpressionNet ->
expressions stream of ``nvp reenact`` over it, without rendering, and reports the wall
time and the peak resident memory against the size of the decoded audio and of its
per-frame features. The rendering that follows holds one batch of frames at a time.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("target")
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--chunk", type=float, default=10.0)
    args = ap.parse_args()

    import numpy as np
    import soundfile as sf

    from nvp.io.audio import iter_audio
    from nvp.io.synthetic import speech_audio
    from nvp.reenact.config import ReenactConfig
    from nvp.reenact.pipeline import check_audio, stream_expressions
    from nvp.reenact.target import load_target

    target = load_target(args.target, device="cpu")
    base = rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.flac"
        pieces = [speech_audio(10.0, 16000, seed=s) for s in range(6)]  # 10-s pieces
        with sf.SoundFile(path, "w", 16000, 1, format="FLAC") as f:
            for i in range(int(np.ceil(args.minutes * 6))):
                f.write(pieces[i % 6])
        del pieces
        print(f"wrote {args.minutes:g} min of audio; RSS so far {rss_mb():.0f} MB")
        t0 = time.perf_counter()
        chk = check_audio(path, 0.0, args.chunk)
        t_check = time.perf_counter() - t0
        n = round(chk.duration_s * target.fps)
        cfg = ReenactConfig(chunk_seconds=args.chunk)
        t0 = time.perf_counter()
        done = 0
        for _, e in stream_expressions(target, iter_audio(path, 16000, args.chunk), n, cfg):
            done += len(e)
        t_stream = time.perf_counter() - t0
    d = target.store["audio_features"].shape[1:]
    audio_mb = chk.n_samples * 4 / 2**20
    feat_mb = n * int(np.prod(d)) * 4 / 2**20
    print(
        f"{chk.duration_s / 60:.1f} min, {n} frames ({done} streamed)\n"
        f"audio check: {t_check:.1f} s; audio -> expressions: {t_stream:.1f} s "
        f"({n / t_stream:.0f} frames/s)\n"
        f"peak RSS {rss_mb():.0f} MB (after loading the target: {base:.0f} MB); the whole "
        f"decoded audio would be {audio_mb:.0f} MB and its feature windows {feat_mb:.0f} MB"
    )


if __name__ == "__main__":
    main()
