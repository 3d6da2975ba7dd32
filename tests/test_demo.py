"""``nvp demo --video``: every stage on a user's video (the default demo runs in the notebook
tests, which need espeak-ng)."""

from __future__ import annotations

import json

import numpy as np

from nvp.data.store import SequenceStore
from nvp.demo import run_demo
from nvp.io.video import probe


def test_demo_on_a_given_video(talking_head, tmp_path):
    times = run_demo(tmp_path, talking_head, size=48, a2e_epochs=2, render_epochs=1)
    assert list(times) == [
        "preprocess",
        "build-face-model",
        "train-a2e",
        "train-renderer",
        "make-target (fit mapping)",
        "reenact (the video's own audio)",
        "evaluate",
        "lip motion of the new speech",
    ]
    src = probe(talking_head)
    out = probe(tmp_path / "say.mp4")
    assert out.n_frames == src.n_frames and out.width == 2 * 48  # target | reenactment
    m = json.loads((tmp_path / "report" / "metrics.json").read_text())
    # the renders beat a flat image of each evaluated frame's mean colour by a margin
    target = json.loads((tmp_path / "target" / "target.json").read_text())
    store = SequenceStore(target["store"]["path"])
    a, b = store.split_range("test")
    real = np.asarray(store["frames"][a:b], np.float64) / 255
    flat = np.broadcast_to(real.mean(axis=(1, 2), keepdims=True), real.shape)
    flat_psnr = float(np.mean(-10 * np.log10(((real - flat) ** 2).mean(axis=(1, 2, 3)))))
    assert m["frames"] == b - a
    assert m["metrics"]["audio"]["psnr"] > flat_psnr + 3, (m["metrics"]["audio"], flat_psnr)
    assert (tmp_path / "target" / "target.json").is_file()
    assert (tmp_path / "contact_sheet.png").is_file()
    # the report carries the lip-motion section; the new speech has its cross-speaker check
    assert "geometry" in m["lip_motion"] and (tmp_path / "report" / "lips.png").is_file()
    assert "## Lip motion" in (tmp_path / "report" / "report.md").read_text()
    cross = json.loads((tmp_path / "report" / "cross_speaker" / "cross_speaker.json").read_text())
    assert len(cross["audios"]) == 1 and abs(cross["audios"][0]["frames"] - src.n_frames) <= 1
