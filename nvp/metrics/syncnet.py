"""SyncNet audio-visual sync scores: offset / confidence (syncnet_python) and LSE-D / LSE-C.

The network is the one of joonson/syncnet_python (Chung & Zisserman, "Out of time: automated
lip sync in the wild", 2016), whose released weights ``syncnet_v2.model`` are a ``torch.save``'d
state dict. :class:`SyncNet` rebuilds it with the same module names and indices, so that file
loads with ``strict=True`` (:func:`load_syncnet`). Nothing is downloaded: the user supplies the
file (:data:`SYNCNET_SOURCE`).

Pipeline, as syncnet_python's ``SyncNetInstance.evaluate`` (and Wav2Lip's LSE evaluation, which
runs the same code):

* video: 224 × 224 face crops at 25 fps, BGR channel order (the original reads frames with
  OpenCV), values 0 … 255 unnormalised; window ``i`` is frames ``i … i+4``;
* audio: 16 kHz, 13 MFCCs at 100 Hz (:func:`syncnet_mfcc`); window ``i`` is MFCC frames
  ``4i … 4i+19`` (4 MFCC frames per video frame, 0.2 s);
* ``min_length = min(frames, floor(samples / 640))`` and ``min_length - 5`` windows (the
  original's count, one fewer than would fit);
* :func:`sync_scores`: for every video window ``i`` the Euclidean distances to audio windows
  ``i - vshift … i + vshift`` (zero embedding outside the clip), averaged over ``i``; the best
  shift gives the offset, ``LSE-D`` = the smallest mean distance and ``LSE-C`` = the confidence
  ``median - min`` of the mean distances.

Offset sign (derived from the original's indexing, checked by the tests): with ``d`` the delay
of the audio track behind the video in frames (the sound of the lip movement in frame ``t`` is
heard at frame ``t + d``), the minimum lies at ``vshift + d`` and ``offset = -d``. A positive
offset means the audio comes *early* (leads the video), a negative one that it comes late.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import Metric

from nvp.errors import InputError
from nvp.io.files import read_state_dict, state_dict_problems, summarize_problems

__all__ = [
    "SYNCNET_FILENAME",
    "SYNCNET_SOURCE",
    "SyncNet",
    "SyncNetScorer",
    "SyncNetSync",
    "load_syncnet",
    "sync_scores",
    "syncnet_mfcc",
]

SYNCNET_FILENAME = "syncnet_v2.model"
SYNCNET_SOURCE = (
    "http://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model (the file "
    "joonson/syncnet_python's download_model.sh fetches into data/)"
)
"""Where the user gets the weights (only named in error messages)."""

SAMPLE_RATE = 16_000
FPS = 25
MFCC_PER_FRAME = 4
"""MFCC frames (100 Hz) per video frame (25 fps)."""
WINDOW_FRAMES = 5
"""Video frames per SyncNet window (0.2 s)."""
MFCC_WINDOW = WINDOW_FRAMES * MFCC_PER_FRAME
"""MFCC frames per SyncNet window (20)."""
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS


# ----------------------------------------------------------------------------- network


def _block(conv: nn.Module, channels: int, bn: type[nn.Module], inplace: bool) -> list[nn.Module]:
    return [conv, bn(channels), nn.ReLU(inplace=inplace)]


def _audio_trunk() -> nn.Sequential:
    """(B, 1, 13, 20) MFCC windows -> (B, 512, 1, 1); indices as syncnet_python's
    ``netcnnaud`` (convolutions at 0, 4, 8, 11, 14, 18, batch norms one after each)."""
    bn = nn.BatchNorm2d
    return nn.Sequential(
        *_block(nn.Conv2d(1, 64, 3, padding=1), 64, bn, True),
        nn.MaxPool2d(kernel_size=1, stride=1),
        *_block(nn.Conv2d(64, 192, 3, padding=1), 192, bn, True),
        nn.MaxPool2d(kernel_size=3, stride=(1, 2)),
        *_block(nn.Conv2d(192, 384, 3, padding=1), 384, bn, True),
        *_block(nn.Conv2d(384, 256, 3, padding=1), 256, bn, True),
        *_block(nn.Conv2d(256, 256, 3, padding=1), 256, bn, True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        *_block(nn.Conv2d(256, 512, (5, 4)), 512, bn, False),
    )


def _lip_trunk() -> nn.Sequential:
    """(B, 3, 5, 224, 224) frame windows -> (B, 512, 1, 1, 1); indices as syncnet_python's
    ``netcnnlip``."""
    bn = nn.BatchNorm3d
    return nn.Sequential(
        *_block(nn.Conv3d(3, 96, (5, 7, 7), stride=(1, 2, 2)), 96, bn, True),
        nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
        *_block(nn.Conv3d(96, 256, (1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)), 256, bn, True),
        nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
        *_block(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), 256, bn, True),
        *_block(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), 256, bn, True),
        *_block(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), 256, bn, True),
        nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
        *_block(nn.Conv3d(256, 512, (1, 6, 6)), 512, bn, True),
    )


def _head(dim: int) -> nn.Sequential:
    """512 -> ``dim`` embedding: Linear, BatchNorm1d, ReLU, Linear (indices 0, 1, 2, 3)."""
    return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, dim))


class SyncNet(nn.Module):
    """SyncNet v2 with syncnet_python's state-dict keys (``netcnnaud.*``, ``netfcaud.*``,
    ``netfclip.*``, ``netcnnlip.*``); 13.6 M parameters.

    Args:
        embedding_dim: size of both embeddings (1024 in ``syncnet_v2.model``).
    """

    def __init__(self, embedding_dim: int = 1024) -> None:
        super().__init__()
        self.netcnnaud = _audio_trunk()
        self.netfcaud = _head(embedding_dim)
        self.netfclip = _head(embedding_dim)
        self.netcnnlip = _lip_trunk()

    def forward_aud(self, mfcc: Tensor) -> Tensor:
        """Audio embeddings.

        Args:
            mfcc: (B, 1, 13, 20) MFCC windows (:func:`syncnet_mfcc` rows ``4i … 4i+19``).

        Returns:
            (B, embedding_dim).
        """
        return self.netfcaud(self.netcnnaud(mfcc).flatten(1))

    def forward_lip(self, frames: Tensor) -> Tensor:
        """Video embeddings.

        Args:
            frames: (B, 3, 5, 224, 224) BGR values 0 … 255 (not normalised).

        Returns:
            (B, embedding_dim).
        """
        return self.netfclip(self.netcnnlip(frames).flatten(1))

    def forward(self, frames: Tensor, mfcc: Tensor) -> tuple[Tensor, Tensor]:
        """``(forward_lip(frames), forward_aud(mfcc))``."""
        return self.forward_lip(frames), self.forward_aud(mfcc)


def _where_to_get() -> str:
    return f"get {SYNCNET_FILENAME} from {SYNCNET_SOURCE} and pass its path"


def load_syncnet(path: str | Path, device: str | torch.device = "cpu") -> SyncNet:
    """Load ``syncnet_v2.model`` (a state dict with syncnet_python's keys) in eval mode.

    The released file predates PyTorch's ``num_batches_tracked`` batch-norm counters; only
    those keys may be absent (they are unused in eval mode). Every other key must be present
    with its shape, and no other key may be there.

    Args:
        path: the weight file.
        device: where the model goes.

    Returns:
        :class:`SyncNet` in eval mode, parameters frozen.

    Raises:
        InputError: the file is missing, unreadable, or not SyncNet's state dict (the message
            says where to get the right one).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"the SyncNet weights are missing: {_where_to_get()}", path=path)
    state = read_state_dict(path, f"the state dict {SYNCNET_FILENAME}: {_where_to_get()}")
    model = SyncNet()
    own = model.state_dict()
    tracked = lambda key: key.endswith("num_batches_tracked")  # noqa: E731
    shapes = {k: tuple(v.shape) for k, v in own.items()}
    if problems := state_dict_problems(state, shapes, optional=tracked, strict=True):
        raise InputError(
            f"not syncnet_python's SyncNet state dict: {summarize_problems(problems)}; "
            f"{_where_to_get()}",
            path=path,
        )
    state = {**{k: v.clone() for k, v in own.items() if tracked(k)}, **state}
    model.load_state_dict(state, strict=True)
    return model.requires_grad_(False).eval().to(device)


# ----------------------------------------------------------------------------- MFCC


def syncnet_mfcc(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The MFCCs syncnet_python feeds SyncNet: (13, T) at 100 Hz.

    ``python_speech_features.mfcc(audio, sample_rate)`` with its defaults (25 ms rectangular
    window, 10 ms step, pre-emphasis 0.97, 512-point FFT power spectrum / 512, 26 mel filters
    0 Hz … Nyquist snapped to FFT bins, log, orthonormal DCT-II, 13 cepstra, sinusoidal lifter
    22, coefficient 0 replaced by the log frame energy): SyncNet's scores depend on its exact
    framing (frame ``t`` covers samples ``160 t … 160 t + 399``, the signal zero-padded at the
    end; ``T = 1 + ceil((S - 400) / 160)``) and its bin-snapped filterbank, which librosa's
    MFCC does not reproduce.

    Args:
        audio: (S,) mono samples. Floats are taken in [-1, 1] and scaled by 32768 to the int16
            values the original reads from its 16-bit wav (the scale changes coefficient 0,
            the log energy); integers are used as they are.
        sample_rate: Hz (16 000 for SyncNet).

    Returns:
        (13, T) float64, row ``c`` = cepstral coefficient ``c``, column ``t`` = frame at
        ``t · 10 ms``.
    """
    from python_speech_features import mfcc

    x = np.asarray(audio)
    if x.ndim != 1:
        raise ValueError(f"expected mono audio (S,), got shape {x.shape}")
    x = x.astype(np.float64) * (32768.0 if np.issubdtype(x.dtype, np.floating) else 1.0)
    return mfcc(x, sample_rate).T


# ----------------------------------------------------------------------------- scores


def sync_scores(video_emb: Tensor, audio_emb: Tensor, vshift: int = 15) -> dict[str, Any]:
    """Offset, confidence, LSE-D and LSE-C from per-window embeddings (syncnet_python's
    ``calc_pdist`` + ``evaluate``).

    Args:
        video_emb: (N, D) lip embeddings of windows 0 … N-1.
        audio_emb: (N, D) audio embeddings of the same windows.
        vshift: largest shift searched, frames (15 in syncnet_python's ``run_syncnet`` and
            Wav2Lip's evaluation).

    Returns:
        ``dists``: (N, 2·vshift+1) float tensor, ``dists[i, j] = ||v_i − a_{i+j−vshift}||``
        (``torch.nn.functional.pairwise_distance``, eps 1e-6; a zero vector outside 0 … N-1);
        ``mean_dists``: (2·vshift+1,) mean over windows; ``offset`` (int, frames):
        ``vshift − argmin mean_dists`` (sign: module docstring); ``min_dist`` = ``lse_d``: the
        smallest mean distance; ``confidence`` = ``lse_c``: ``median(mean_dists) − min``.
    """
    if video_emb.ndim != 2 or video_emb.shape != audio_emb.shape or len(video_emb) == 0:
        raise ValueError(
            f"expected two (N, D) embeddings with N >= 1, got {tuple(video_emb.shape)} and "
            f"{tuple(audio_emb.shape)}"
        )
    win = 2 * vshift + 1
    v = video_emb.float()
    padded = F.pad(audio_emb.float(), (0, 0, vshift, vshift))
    rows = []
    for start in range(0, len(v), 256):  # bounded memory: 256 x win x D at a time
        i = torch.arange(start, min(start + 256, len(v)), device=v.device)
        a = padded[i[:, None] + torch.arange(win, device=v.device)[None, :]]  # (n, win, D)
        rows.append(F.pairwise_distance(v[i, None, :].expand_as(a), a))
    dists = torch.cat(rows)
    mean = dists.mean(0)
    min_dist, min_idx = torch.min(mean, 0)
    conf = torch.median(mean) - min_dist
    return {
        "offset": vshift - int(min_idx),
        "confidence": float(conf),
        "min_dist": float(min_dist),
        "lse_d": float(min_dist),
        "lse_c": float(conf),
        "mean_dists": mean,
        "dists": dists,
    }


class SyncNetScorer:
    """SyncNet scores of one clip: face crops at 25 fps and its 16 kHz audio.

    Args:
        model: a loaded :class:`SyncNet` or the path of ``syncnet_v2.model``.
        device: where the network runs.
        batch_size: windows per forward pass (20 in syncnet_python).
        vshift: largest shift searched, frames.
    """

    def __init__(
        self,
        model: SyncNet | str | Path,
        device: str | torch.device = "cpu",
        batch_size: int = 20,
        vshift: int = 15,
    ) -> None:
        if isinstance(model, SyncNet):
            model = model.requires_grad_(False).eval().to(device)
        else:
            model = load_syncnet(model, device)
        self.model = model
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.vshift = vshift

    @staticmethod
    def prepare_frames(frames: np.ndarray) -> Tensor:
        """(N, H, W, 3) uint8 RGB -> (1, 3, N, 224, 224) float BGR 0 … 255.

        Resized with OpenCV's bilinear ``cv2.resize`` (as syncnet_python's face-crop
        pipeline) where not already 224 × 224.
        """
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"expected (N, H, W, 3) RGB frames, got shape {frames.shape}")
        if frames.shape[1:3] != (224, 224):
            import cv2

            frames = np.stack([cv2.resize(f, (224, 224)) for f in frames])
        bgr = torch.from_numpy(np.ascontiguousarray(frames[..., ::-1])).float()
        return bgr.permute(3, 0, 1, 2).unsqueeze(0)

    @torch.no_grad()
    def embed(self, frames: np.ndarray, audio: np.ndarray) -> tuple[Tensor, Tensor]:
        """Per-window embeddings.

        Args:
            frames: (N, H, W, 3) uint8 RGB face crops at 25 fps.
            audio: (S,) 16 kHz mono (float in [-1, 1] or int16), starting with frame 0.

        Returns:
            (video_emb, audio_emb), each (M, 1024) on the CPU with ``M = min(N, S // 640) − 5``
            windows (window ``i``: frames ``i … i+4``, MFCC frames ``4i … 4i+19``).

        Raises:
            InputError: fewer than 6 frames of video with audio.
        """
        n_frames = len(frames)
        min_length = min(n_frames, len(audio) // SAMPLES_PER_FRAME)
        n_win = min_length - WINDOW_FRAMES
        if n_win < 1:
            raise InputError(
                f"SyncNet needs at least {WINDOW_FRAMES + 1} frames (0.24 s) of video with "
                f"audio; got {n_frames} frames and {len(audio) / SAMPLE_RATE:.3f} s of audio"
            )
        video = self.prepare_frames(frames[:min_length])
        mfcc = torch.from_numpy(syncnet_mfcc(np.asarray(audio))).float()[None, None]
        v_out, a_out = [], []
        for start in range(0, n_win, self.batch_size):
            idx = range(start, min(n_win, start + self.batch_size))
            lips = torch.cat([video[:, :, i : i + WINDOW_FRAMES] for i in idx])
            cc = torch.cat(
                [mfcc[..., MFCC_PER_FRAME * i : MFCC_PER_FRAME * i + MFCC_WINDOW] for i in idx]
            )
            v_out.append(self.model.forward_lip(lips.to(self.device)).float().cpu())
            a_out.append(self.model.forward_aud(cc.to(self.device)).float().cpu())
        return torch.cat(v_out), torch.cat(a_out)

    def __call__(
        self, frames: np.ndarray, audio: np.ndarray, sample_rate: int = SAMPLE_RATE
    ) -> dict[str, Any]:
        """Scores of one clip.

        Args:
            frames: (N, H, W, 3) uint8 RGB face crops at 25 fps (as syncnet_python's crops:
                the whole face, square).
            audio: (S,) mono, ``sample_rate`` Hz (must be 16 000; resample first).
            sample_rate: Hz.

        Returns:
            ``{"offset": int frames, "confidence": float, "lse_d": float, "lse_c": float,
            "dists": (M, 2·vshift+1) ndarray, "mean_dists": (2·vshift+1,) ndarray}``; see
            :func:`sync_scores`.
        """
        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"SyncNet needs 16 kHz audio, got {sample_rate} Hz: resample it")
        video_emb, audio_emb = self.embed(frames, audio)
        s = sync_scores(video_emb, audio_emb, self.vshift)
        return {
            "offset": s["offset"],
            "confidence": s["confidence"],
            "lse_d": s["lse_d"],
            "lse_c": s["lse_c"],
            "dists": s["dists"].numpy(),
            "mean_dists": s["mean_dists"].numpy(),
        }


class SyncNetSync(Metric):
    """Mean SyncNet scores over clips: LSE-D (lower is better), LSE-C (higher is better), the
    mean offset and the mean absolute offset (frames).

    ``update(frames (N, H, W, 3) uint8, audio (S,) 16 kHz)`` scores one clip (see
    :class:`SyncNetScorer`); ``compute()`` returns ``{"lse_d", "lse_c", "offset",
    "abs_offset"}`` averaged over the clips (NaN before any update).

    Args:
        scorer: a :class:`SyncNetScorer`, or the path of ``syncnet_v2.model`` (scored on the
            CPU).
    """

    full_state_update = False

    def __init__(self, scorer: SyncNetScorer | str | Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # a plain attribute, not a submodule: the fixed weights stay out of state_dict()
        self.scorer = scorer if isinstance(scorer, SyncNetScorer) else SyncNetScorer(scorer)
        for name in ("lse_d", "lse_c", "offset", "abs_offset", "count"):
            self.add_state(name, default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, frames: np.ndarray | Tensor, audio: np.ndarray | Tensor) -> None:
        f = frames.detach().cpu().numpy() if isinstance(frames, Tensor) else np.asarray(frames)
        a = audio.detach().cpu().numpy() if isinstance(audio, Tensor) else np.asarray(audio)
        s = self.scorer(f, a)
        self.lse_d += s["lse_d"]
        self.lse_c += s["lse_c"]
        self.offset += s["offset"]
        self.abs_offset += abs(s["offset"])
        self.count += 1

    def compute(self) -> dict[str, Tensor]:
        n = self.count
        return {
            k: (getattr(self, k) / n).float() for k in ("lse_d", "lse_c", "offset", "abs_offset")
        }
