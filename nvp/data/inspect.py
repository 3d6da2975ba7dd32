"""``nvp inspect``: a store's summary and a contact sheet of landmarks and UV overlays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from nvp.data.store import SequenceStore
from nvp.tracking import topology
from nvp.tracking.landmarks import FACE_DETECTED, FACE_INTERPOLATED, FACE_MISSING


def summary(store: SequenceStore) -> dict[str, Any]:
    """The facts a user checks first about a store."""
    a = store.attrs
    flags = np.asarray(store["face_flag"][...])
    src = a.get("source", {})
    fm = a.get("face_model", {})
    feats = a.get("features", {})
    return {
        "store": str(store.path),
        "frames": store.n_frames,
        "fps": store.fps,
        "duration_s": round(store.n_frames / store.fps, 3),
        "size": store.size,
        "source": src.get("path"),
        "source_resolution": (
            f"{src.get('width')}x{src.get('height')} @ {src.get('fps', 0):.3g} fps"
        ),
        "face_model": f"{fm.get('name')} {fm.get('hash')} (K = {fm.get('n_components')})",
        "features": f"{feats.get('name')} window {tuple(store['audio_features'].shape[1:])}"
        f" stride {feats.get('stride')}",
        "frames_without_face": int((flags != FACE_DETECTED).sum()),
        "frames_interpolated": int((flags == FACE_INTERPOLATED).sum()),
        "frames_missing": int((flags == FACE_MISSING).sum()),
        "splits": a.get("splits"),
        "audio_s": round(store["audio"].shape[0] / a.get("sample_rate", 16000), 3),
        "arrays": {k: f"{tuple(store[k].shape)} {store[k].dtype}" for k in store},
    }


def format_summary(s: dict[str, Any]) -> str:
    lines = []
    for k, v in s.items():
        if k == "arrays":
            lines.append("arrays:")
            lines.extend(f"  {name:15s} {desc}" for name, desc in v.items())
        else:
            lines.append(f"{k}: {v}")
    return "\n".join(lines)


def uv_overlay(
    frame: np.ndarray, uv: np.ndarray, mask: np.ndarray, alpha: float = 0.5
) -> np.ndarray:
    """Frame (H, W, 3) uint8 with the UV map blended in where ``mask > 0`` (u red, v green),
    a checker pattern of the texture space to show its continuity, and the mouth in blue."""
    out = frame.astype(np.float32)
    valid = mask > 0
    uvf = np.clip(uv.astype(np.float32), 0, 1)
    checker = ((np.floor(uvf[..., 0] * 16) + np.floor(uvf[..., 1] * 16)) % 2)[..., None]
    colour = np.concatenate([uvf[..., :1], uvf[..., 1:2], 0.3 * checker], axis=-1) * 255
    colour[mask == topology.LABEL_MOUTH, 2] = 255
    out[valid] = (1 - alpha) * out[valid] + alpha * colour[valid]
    return out.clip(0, 255).astype(np.uint8)


def landmark_overlay(frame: np.ndarray, landmarks: np.ndarray, flag: int) -> np.ndarray:
    """Frame with the 468 landmarks (yellow; lips red); interpolated/missing frames get a border."""
    img = np.ascontiguousarray(frame.copy())
    lips = set(topology.lip_vertices().tolist())
    r = max(1, frame.shape[0] // 256)
    for i, (x, y) in enumerate(landmarks[:, :2]):
        col = (255, 40, 40) if i in lips else (255, 230, 0)
        cv2.circle(img, (round(x - 0.5), round(y - 0.5)), r, col, -1, lineType=cv2.LINE_AA)
    if flag != FACE_DETECTED:
        cv2.rectangle(img, (0, 0), (img.shape[1] - 1, img.shape[0] - 1), (255, 0, 255), 3)
    return img


def contact_sheet(store: SequenceStore, out: str | Path, n: int = 8) -> Path:
    """Write a PNG: for ``n`` frames spread over the sequence, the crop with landmarks (top row)
    and with the UV map / mouth mask overlaid (bottom row), frame index in the corner."""
    idx = np.linspace(0, store.n_frames - 1, min(n, store.n_frames)).round().astype(int)
    lms = store["landmarks"]
    flags = np.asarray(store["face_flag"][...])
    top, bottom = [], []
    for i in idx:
        frame = np.asarray(store["frames"][i])
        a = landmark_overlay(frame, np.asarray(lms[i]), int(flags[i]))
        b = uv_overlay(frame, np.asarray(store["uv"][i]), np.asarray(store["mask"][i]))
        cv2.putText(a, str(i), (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1)
        top.append(a)
        bottom.append(b)
    sheet = np.concatenate([np.concatenate(top, 1), np.concatenate(bottom, 1)], 0)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    Image.fromarray(sheet).save(tmp)
    tmp.replace(out)
    return out
