"""An offline audio-visual sync *proxy* that needs no weights.

It correlates the mouth opening measured on the video with the audio's RMS
envelope at lags of -L … +L frames and reports the best lag and its
correlation. It is a proxy, not SyncNet: speech energy and mouth opening are
only loosely related (measured on the real GRID clips: best r ≈ 0.36-0.67), so
use it to catch gross offsets (a shifted audio track, a stage that drops
frames), and SyncNet's offset / confidence to compare methods.

Lag convention: ``r(L) = corr(mouth[t], envelope[t + L])``; L > 0 means the
audio comes after the mouth (the audio is late).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric


def audio_envelope(audio: np.ndarray, sample_rate: int, n_frames: int, fps: float) -> np.ndarray:
    """RMS of the audio over a 1/fps window centred on each video frame's time: (n_frames,).

    Args:
        audio: (S,) mono samples.
        sample_rate: Hz.
        n_frames: video frames; frame i is at time i / fps.
        fps: video frame rate.
    """
    audio = np.asarray(audio, dtype=np.float64)
    half = 0.5 * sample_rate / fps
    centres = np.arange(n_frames) * sample_rate / fps
    csum = np.concatenate([[0.0], np.cumsum(audio**2)])
    lo = np.clip(np.round(centres - half).astype(int), 0, len(audio))
    hi = np.clip(np.round(centres + half).astype(int), 0, len(audio))
    n = np.maximum(hi - lo, 1)
    return np.sqrt((csum[hi] - csum[lo]) / n)


def lagged_correlation(mouth: np.ndarray, envelope: np.ndarray, max_lag: int) -> np.ndarray:
    """``r(L) = corr(mouth[t], envelope[t + L])`` for L = -max_lag … max_lag: (2·max_lag+1,).

    Each correlation uses the overlapping frames only; NaN where fewer than 3 frames overlap
    or a side is constant.
    """
    m = np.asarray(mouth, np.float64)
    e = np.asarray(envelope, np.float64)
    n = min(len(m), len(e))
    out = np.full(2 * max_lag + 1, np.nan)
    for k, lag in enumerate(range(-max_lag, max_lag + 1)):
        if lag >= 0:
            a, b = m[: n - lag], e[lag:n]
        else:
            a, b = m[-lag:n], e[: n + lag]
        if len(a) >= 3 and a.std() > 0 and b.std() > 0:
            out[k] = float(np.corrcoef(a, b)[0, 1])
    return out


def sync_proxy(
    mouth: np.ndarray, audio: np.ndarray, sample_rate: int, fps: float, max_lag: int = 5
) -> tuple[int, float, np.ndarray]:
    """Best lag (frames), its correlation, and r over all lags (see the module docstring)."""
    env = audio_envelope(audio, sample_rate, len(mouth), fps)
    r = lagged_correlation(mouth, env, max_lag)
    if np.all(np.isnan(r)):
        return 0, float("nan"), r
    k = int(np.nanargmax(r))
    return k - max_lag, float(r[k]), r


class SyncProxy(Metric):
    """Mean over sequences of the offline sync proxy: ``best_lag`` (frames) and ``r_best``.

    ``update(mouth (N,), audio (S,), sample_rate, fps)`` adds one sequence; ``compute()``
    returns ``{"lag": mean best lag, "r": mean best correlation}``. Labelled a proxy: see the
    module docstring.
    """

    full_state_update = False

    def __init__(self, max_lag: int = 5, **kwargs) -> None:
        super().__init__(**kwargs)
        self.max_lag = max_lag
        self.add_state(
            "lag_sum", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state("r_sum", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(
        self, mouth: Tensor | np.ndarray, audio: Tensor | np.ndarray, sample_rate: int, fps: float
    ) -> None:
        m = mouth.detach().cpu().numpy() if isinstance(mouth, Tensor) else np.asarray(mouth)
        a = audio.detach().cpu().numpy() if isinstance(audio, Tensor) else np.asarray(audio)
        lag, r, _ = sync_proxy(m, a, sample_rate, fps, self.max_lag)
        if np.isfinite(r):
            self.lag_sum += lag
            self.r_sum += r
            self.count += 1

    def compute(self) -> dict[str, Tensor]:
        n = self.count.clamp(min=1)
        return {"lag": (self.lag_sum / n).float(), "r": (self.r_sum / n).float()}
