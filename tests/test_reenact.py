"""The TARGET bundle, ``nvp reenact`` / ``say`` / ``evaluate`` on a tiny generated target."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from nvp.cli import main
from nvp.errors import InputError, MissingDependencyError
from nvp.io.audio import load_audio, write_wav
from nvp.io.files import file_sha256
from nvp.io.synthetic import speech_audio
from nvp.io.video import iter_frames, probe
from nvp.reenact.config import ReenactConfig, TTSConfig
from nvp.reenact.pipeline import paste, pingpong, stream_expressions
from nvp.reenact.target import check_compatible, load_target

HAS_ESPEAK = shutil.which("espeak-ng") is not None
#: The synthetic voice (used where espeak-ng is missing) is hardly speech to the VAD.
SPEECH_CHECK = [] if HAS_ESPEAK else ["min_speech_seconds=0"]


def test_pingpong():
    assert pingpong(np.arange(10), 4).tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
    assert pingpong(np.arange(3), 1).tolist() == [0, 0, 0]


def test_target_bundle_and_checks(tiny_target, tmp_path):
    t = load_target(tiny_target, device="cpu")
    manifest = json.loads((tiny_target / "target.json").read_text())
    assert manifest["a2e"]["hash"] == t.a2e.hash
    assert t.mapping.shape == (t.face_model.n_components, t.a2e.cfg.net.audio_expr_dim)
    rckpt = torch.load(tiny_target / "renderer.ckpt", weights_only=True)
    assert "optimizer_states" not in rckpt  # inference weights only
    meta = {"a2e_hash": t.a2e.hash}
    hp = rckpt["hyper_parameters"]
    check_compatible(t.store, t.a2e, t.mapping, meta, hp)  # consistent: no error
    with pytest.raises(InputError, match="fitted for A2E checkpoint"):
        check_compatible(t.store, t.a2e, t.mapping, {"a2e_hash": "0" * 16}, hp)
    from nvp.tracking.face_model import template_face_model

    other = dataclasses.replace(t.a2e, face_model=template_face_model())
    with pytest.raises(InputError, match="incompatible A2E checkpoint: its face model"):
        check_compatible(t.store, other, t.mapping, meta, hp)
    feats = dataclasses.replace(t.a2e, feature_signature={"name": "whisper"})
    with pytest.raises(InputError, match="other audio features"):
        check_compatible(t.store, feats, t.mapping, meta, hp)
    with pytest.raises(InputError, match="mapping is"):
        check_compatible(t.store, t.a2e, t.mapping[:, :3], meta, hp)
    bad_hp = {**hp, "target": {**hp["target"], "source_sha256": "x"}}
    with pytest.raises(InputError, match="another video"):
        check_compatible(t.store, t.a2e, t.mapping, meta, bad_hp)
    # an incompatible bundle on disk: a mapping fitted for another A2E checkpoint
    broken = tmp_path / "broken"
    shutil.copytree(tiny_target, broken)
    from nvp.a2e.checkpoint import save_a2e_checkpoint

    b = t.a2e
    save_a2e_checkpoint(
        broken / "a2e.ckpt",
        b.net,
        b.cfg,
        n_sequences=b.net.mapping.shape[0],
        expression_dim=b.net.mapping.shape[1],
        sequence_names=b.sequence_names,
        feature_signature=b.feature_signature,
        face_model=b.face_model,
        source={"note": "retrained"},
    )
    with pytest.raises(InputError, match=r"a2e\.ckpt: this file was altered after"):
        load_target(broken, device="cpu")
    # ... and with target.json naming the new file: the mapping belongs to another one
    m = json.loads((broken / "target.json").read_text())
    m["a2e"]["hash"] = file_sha256(broken / "a2e.ckpt")
    (broken / "target.json").write_text(json.dumps(m))
    with pytest.raises(InputError, match="fitted for A2E checkpoint"):
        load_target(broken, device="cpu")
    assert main(["reenact", "--target", str(broken), "--audio", "x.wav", "--out", "o.mp4"]) == 1
    with pytest.raises(InputError, match="not a target folder"):
        load_target(tmp_path, device="cpu")


def test_streamed_expressions_equal_whole_file(tiny_target, speech_wav):
    t = load_target(tiny_target, device="cpu")
    audio = load_audio(speech_wav, 16000)
    n = round(audio.size / 16000 * t.fps)

    def run(chunk_s: float, sigma: float) -> np.ndarray:
        cfg = ReenactConfig(chunk_seconds=chunk_s, smooth_sigma=sigma)
        step = 4000
        chunks = (audio[i : i + step] for i in range(0, audio.size, step))
        parts = list(stream_expressions(t, chunks, n, cfg))
        assert [p[0] for p in parts] == list(range(0, n, max(1, round(chunk_s * t.fps))))
        return np.concatenate([p[1] for p in parts])

    whole = run(100.0, 0.0)
    assert whole.shape == (n, t.face_model.n_components)
    np.testing.assert_allclose(run(0.6, 0.0), whole, atol=1e-4)
    smooth = run(100.0, 2.0)
    np.testing.assert_allclose(run(0.6, 2.0), smooth, atol=1e-4)
    assert np.abs(np.diff(smooth, axis=0)).mean() < np.abs(np.diff(whole, axis=0)).mean()


@pytest.mark.parametrize(
    "opts, width_factor",
    [([], 1), (["--side-by-side", "--mouth-only", "--smooth", "1.5"], 2)],
    ids=["crop", "side-by-side-mouth-only"],
)
def test_reenact_mp4(tiny_target, speech_wav, tmp_path, opts, width_factor):
    out = tmp_path / "out.mp4"
    code = main(
        [
            "reenact",
            "--target",
            str(tiny_target),
            "--audio",
            str(speech_wav),
            "--out",
            str(out),
            "--device",
            "cpu",
            *opts,
            "chunk_seconds=1.0",
            *SPEECH_CHECK,
        ]
    )
    assert code == 0
    t = load_target(tiny_target, device="cpu")
    info = probe(out)
    dur = load_audio(speech_wav, 16000).size / 16000
    assert info.n_frames == round(dur * t.fps)
    assert abs(info.fps - t.fps) < 1e-6
    assert (info.width, info.height) == (t.size * width_factor, t.size)
    back = load_audio(out, 16000)
    assert abs(back.size / 16000 - dur) < 1 / t.fps
    frames = [f for _, _, f in iter_frames(out)]
    assert np.std(np.stack(frames).astype(np.float32), axis=0).mean() > 0.5  # not a still


def test_reenact_full_frame(tiny_target, speech_wav, tmp_path, monkeypatch, caplog, capsys):
    from nvp.reenact import pipeline

    t = load_target(tiny_target, device="cpu")
    frames = pipeline.target_frames(t.store, "all")
    factor, side = pipeline.face_upscale(t.store, frames)
    sides = np.asarray(t.store["crop"][...])[frames, 2]
    assert factor == pytest.approx(np.median(sides) / t.size)
    assert side % 16 == 0 and side >= np.median(sides) > side - 16
    monkeypatch.setattr(pipeline, "UPSCALE_WARNING", min(0.5, factor / 2))  # force the advice
    out = tmp_path / "full.mp4"
    code = main(
        [
            "reenact",
            "--target",
            str(tiny_target),
            "--audio",
            str(speech_wav),
            "--out",
            str(out),
            "--output",
            "full",
            *SPEECH_CHECK,
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    src = t.store.attrs["source"]
    info = probe(out)
    assert (info.width, info.height) == (src["width"], src["height"])
    assert info.n_frames == round(load_audio(speech_wav, 16000).size / 16000 * t.fps)
    assert f"crop.size={side}" in caplog.text and "scaled up" in caplog.text
    assert f"face scaled {factor:.2f}x" in capsys.readouterr().out


def test_paste_keeps_frame_outside_the_face():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    crop = np.zeros((64, 64, 3), np.uint8) + np.array([200, 10, 50], np.uint8)
    yy, xx = np.mgrid[:64, :64]
    face = (yy - 32) ** 2 + (xx - 32) ** 2 < 12**2
    square = np.array([40.0, 20.0, 80.0])  # 64 px crop of an 80 px square: 1.25 src px / px
    out = paste(frame, crop, face, square, dilate=3, feather=1.0)
    assert out.shape == frame.shape
    # far from the face (more than (12 + 3 + 3 sigma) crop px = 22.5 src px): untouched
    cy, cx = 20 + 32 * 1.25, 40 + 32 * 1.25
    y, x = np.mgrid[:120, :160]
    far = (y - cy) ** 2 + (x - cx) ** 2 > (18 * 1.25 + 1) ** 2
    assert np.array_equal(out[far], frame[far])
    # inside the face the rendered crop replaces the frame
    inner = (y - cy) ** 2 + (x - cx) ** 2 < (8 * 1.25) ** 2
    assert np.abs(out[inner].astype(int) - [200, 10, 50]).max() <= 1


def test_reenact_bad_audio(tiny_target, tmp_path, capsys):
    def run(audio: Path) -> tuple[int, str]:
        out = tmp_path / "bad.mp4"
        code = main(
            [
                "reenact",
                "--target",
                str(tiny_target),
                "--audio",
                str(audio),
                "--out",
                str(out),
                "--device",
                "cpu",
            ]
        )
        assert not out.exists() and not list(tmp_path.glob(".*bad*"))
        return code, capsys.readouterr().err

    silent = write_wav(tmp_path / "silent.wav", np.zeros(32000, np.float32), 16000)
    code, err = run(silent)
    assert code == 1 and "silent" in err
    rng = np.random.default_rng(0)
    noise = write_wav(tmp_path / "noise.wav", 0.3 * rng.standard_normal(48000), 16000)
    code, err = run(noise)
    assert code == 1 and "no speech detected" in err
    short = write_wav(tmp_path / "short.wav", speech_audio(0.3, 16000, seed=1), 16000)
    code, err = run(short)
    assert code == 1 and ("too short" in err or "no speech" in err)
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"this is not audio at all" * 100)
    code, err = run(junk)
    assert code == 1 and "junk.mp3" in err
    code, err = run(tmp_path / "missing.wav")
    assert code == 1 and "missing.wav" in err


def test_tts_errors(tmp_path):
    from nvp.reenact.tts import synthesize

    with pytest.raises(InputError, match="empty"):
        synthesize("   ", tmp_path / "a.wav")
    with pytest.raises(InputError, match="no words"):
        synthesize("?!… --", tmp_path / "a.wav")
    with pytest.raises(MissingDependencyError, match="not installed"):
        synthesize("hello", tmp_path / "a.wav", TTSConfig(command="no-such-tts-xyz {wav}"))
    with pytest.raises(InputError, match="unknown placeholder"):
        synthesize("hello", tmp_path / "a.wav", TTSConfig(command="espeak-ng {nope}"))
    # a command that succeeds but writes silence
    silent = tmp_path / "silence.wav"
    write_wav(silent, np.zeros(16000, np.float32), 16000)
    with pytest.raises(InputError, match="no speech"):
        synthesize("hello", tmp_path / "a.wav", TTSConfig(command=f"cp {silent} {{wav}}"))
    assert not (tmp_path / "a.wav").exists()


@pytest.mark.skipif(
    not HAS_ESPEAK, reason="espeak-ng is not installed (scripts/setup.sh installs it)"
)
def test_say(tiny_target, tmp_path):
    out = tmp_path / "say.mp4"
    code = main(
        [
            "say",
            "--target",
            str(tiny_target),
            "Hello there, how are you today?",
            "--out",
            str(out),
            "--device",
            "cpu",
            "--keep-wav",
        ]
    )
    assert code == 0 and out.is_file() and out.with_suffix(".wav").is_file()
    dur = load_audio(out.with_suffix(".wav"), 16000).size / 16000
    assert abs(probe(out).n_frames - round(dur * 25)) == 0


def test_evaluate_report(tiny_target, tmp_path):
    rep = tmp_path / "report"
    assert (
        main(["evaluate", "--target", str(tiny_target), "--out", str(rep), "--device", "cpu"]) == 0
    )
    m = json.loads((rep / "metrics.json").read_text())
    t = load_target(tiny_target, device="cpu")
    a, b = t.store.split_range("test")
    assert m["frames"] == b - a
    for mode in ("tracking", "audio"):
        r = m["metrics"][mode]
        assert 5 < r["psnr"] < 60 and 0 <= r["colour_l2"] < 1 and -1 <= r["ssim"] <= 1
        assert 0 < r["psnr_mouth"] < 60 and 0 < r["sharpness"] < 10
    assert "syncnet_v2.model" in m["syncnet"]["note"]
    for f in ("report.md", "per_frame.png", "per_frame.csv", "side_by_side.mp4"):
        assert (rep / f).is_file(), f
    info = probe(rep / "side_by_side.mp4")
    assert info.n_frames == b - a and info.width == 3 * t.size
    text = (rep / "report.md").read_text()
    assert "visual tracking" in text and "audio-driven" in text and "proxy" in text
    assert "PSNR mouth" in text and "sharpness" in text
    # the lip-motion section: geometry (face model) and images, with its plot
    lm = m["lip_motion"]
    g = lm["geometry"]
    for k in ("r0", "best_lag", "r_best", "std_ratio", "range_ratio", "lve_mm", "fdd_mm"):
        assert k in g, k
    assert g["std_ratio"] > 0 and -1 <= g["r0"] <= 1 and abs(g["best_lag"]) <= 5
    assert set(lm["images"]) == {"tracking", "audio"}
    assert "applicable" in lm["closures"]
    assert (rep / "lips.png").is_file() and "## Lip motion" in text and "LVE" in text
    assert "reliability" in m["sync_proxy"]
    # the geometry summary is the naive computation on the stored and driven expressions
    from nvp.reenact.lips import opening_mm

    tr = np.asarray(t.store["expression"][a:b])
    drv = t.expressions(np.asarray(t.store["audio_features"][...]))[a:b]
    ident = np.asarray(t.store["identity"][...])
    op_t, op_a = opening_mm(t.face_model, ident, tr), opening_mm(t.face_model, ident, drv)
    assert g["r0"] == pytest.approx(np.corrcoef(op_a, op_t)[0, 1], abs=1e-6)
    assert g["std_ratio"] == pytest.approx(op_a.std() / op_t.std(), rel=1e-6)
    import csv

    with (rep / "per_frame.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["frame"]) for r in rows] == list(range(a, b))
    # Two computations agree: all frames have the same pixel count, so the pooled full-frame
    # PSNR of the metric equals the PSNR of the mean of the per-frame MSEs.
    for mode in ("tracking", "audio"):
        mse = np.mean([10 ** (-float(r[f"{mode}/psnr"]) / 10) for r in rows])
        assert m["metrics"][mode]["psnr"] == pytest.approx(-10 * np.log10(mse), abs=1e-3)


def test_evaluate_cross_speaker(tiny_target, speech_wav, tmp_path):
    """``nvp evaluate --audio``: per voice, amplitude against the target's own motion, the
    proxy with its reliability on the target, closures (or why not) and a mouth-crop strip."""
    rep = tmp_path / "cross"
    argv = ["evaluate", "--target", str(tiny_target), "--out", str(rep), "--device", "cpu"]
    # a folder stands for its audio files
    assert main([*argv, "--audio", str(speech_wav.parent), "strip_seconds=1"]) == 0
    res = json.loads((rep / "cross_speaker.json").read_text())
    (a,) = res["audios"]
    t = load_target(tiny_target, device="cpu")
    n = round(load_audio(speech_wav, 16000).size / 16000 * t.fps)
    assert a["frames"] == n
    assert a["geometry"]["std_ratio"] > 0 and 0 <= a["geometry"]["closed_fraction"] <= 1
    assert np.isfinite(a["images"]["std_ratio"]) or a["images"]["frames_with_face"] < 2
    rel = res["reference"]["sync_proxy"]
    assert rel["informative"] == (rel["r_real"] is not None and rel["r_real"] >= 0.3)
    from PIL import Image

    strip = Image.open(rep / a["strip"])
    # 1 s at 25 fps: one row of 25 rendered crops above one row of real crops (+ separator)
    assert strip.size == (25 * 64, 2 * 64 + 4)
    md = (rep / "cross_speaker.md").read_text()
    assert speech_wav.name in md and (rep / "cross_speaker.png").is_file()
    assert main([*argv, "--audio", str(tmp_path / "missing.wav")]) == 1
