"""End-to-end preprocessing on clips the suite generates, config handling and bad inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr

from nvp.cli import main
from nvp.config import PreprocessConfig, load, make_run_dir, to_object
from nvp.data.crop import crop_squares, cut_crop, landmarks_to_crop
from nvp.data.preprocess import preprocess, store_names
from nvp.data.store import MANIFEST, SequenceStore, find_stores, time_splits
from nvp.errors import ConfigError
from nvp.tracking.landmarks import LandmarkDetector


def _cfg(*cli: str) -> PreprocessConfig:
    return to_object(load(PreprocessConfig, "preprocess/default.yaml", cli=list(cli)))


class TestConfig:
    def test_layers(self, tmp_path):
        y = tmp_path / "x.yaml"
        y.write_text("crop:\n  size: 128\nfps: 30\n")
        cfg = load(
            PreprocessConfig,
            "preprocess/default.yaml",
            y,
            overrides={"fps": 20},
            cli=["crop.mode=track"],
        )
        assert cfg.crop.size == 128 and cfg.fps == 20 and cfg.crop.mode == "track"

    def test_unknown_key_named(self):
        with pytest.raises(ConfigError, match=r"crop\.szie"):
            load(PreprocessConfig, cli=["crop.szie=3"])

    def test_unknown_key_in_yaml(self, tmp_path):
        y = tmp_path / "bad.yaml"
        y.write_text("landmarks:\n  max_gapp: 3\n")
        with pytest.raises(ConfigError, match="max_gapp"):
            load(PreprocessConfig, y)

    def test_bad_value_and_literal(self):
        with pytest.raises(ConfigError, match=r"crop\.size"):
            load(PreprocessConfig, cli=["crop.size=big"])
        with pytest.raises(ConfigError, match=r"crop\.mode"):
            load(PreprocessConfig, cli=["crop.mode=wobbly"])

    def test_bad_dotlist(self):
        with pytest.raises(ConfigError, match="key=value"):
            load(PreprocessConfig, cli=["=3"])

    def test_run_dirs_are_fresh(self, tmp_path):
        cfg = load(PreprocessConfig)
        a = make_run_dir(tmp_path, "job", cfg)
        b = make_run_dir(tmp_path, "job", cfg)
        assert a != b and (a / "config.yaml").is_file() and (b / "config.yaml").is_file()
        again = load(PreprocessConfig, a / "config.yaml")
        assert again == cfg

    def test_dry_run_prints_config(self, capsys, tmp_path):
        assert main(["preprocess", "--out", str(tmp_path / "d"), "--dry-run", "crop.size=64"]) == 0
        out = capsys.readouterr().out
        assert "size: 64" in out and "pose_points" in out
        assert not (tmp_path / "d").exists()

    def test_cli_unknown_key_exit_code(self, capsys, talking_head, tmp_path):
        code = main(["preprocess", str(talking_head), "--out", str(tmp_path / "d"), "foo.bar=1"])
        assert code == 1
        assert "foo.bar" in capsys.readouterr().err
        assert not find_stores(tmp_path / "d")


class TestCrop:
    def test_fixed_square_covers_track(self):
        rng = np.random.default_rng(0)
        lm = rng.uniform(100, 160, (20, 468, 3)).astype(np.float32)
        lm[:, :, 0] += np.linspace(0, 30, 20)[:, None]
        sq = crop_squares(lm, scale=1.5, mode="fixed", sigma=0)
        assert np.all(sq == sq[0])
        assert sq[0, 0] <= lm[:, :, 0].min() and sq[0, 0] + sq[0, 2] >= lm[:, :, 0].max()
        tr = crop_squares(lm, scale=1.5, mode="track", sigma=0)
        assert np.ptp(tr[:, 0]) > 20 and np.ptp(tr[:, 2]) == 0

    def test_crop_and_landmarks_agree(self):
        # A white dot at a known source position lands where the landmark transform puts it.
        img = np.zeros((300, 400, 3), np.uint8)
        img[149:152, 249:252] = 255  # centre pixel (150, 250): continuous (250.5, 150.5)
        sq = np.array([180.0, 90.0, 150.0], np.float32)
        crop = cut_crop(img, sq, 300)
        lm = landmarks_to_crop(np.array([[[250.5, 150.5, 0.0]]], np.float32), sq[None], 300)
        ys, xs = np.nonzero(crop[..., 0] > 127)
        assert abs((xs.mean() + 0.5) - lm[0, 0, 0]) < 0.6
        assert abs((ys.mean() + 0.5) - lm[0, 0, 1]) < 0.6

    def test_store_names(self):
        names = store_names([Path("a/x.mp4"), Path("b/x.mp4"), Path("c/y z.mov")])
        assert names == ["a_x", "b_x", "y_z"]


class TestSplits:
    def test_contiguous(self):
        s = time_splits(100, 0.8, 0.1, 0.1)
        assert s == {"train": [0, 80], "val": [80, 90], "test": [90, 100]}
        s = time_splits(11, 10, 0, 1)
        assert s["train"] == [0, 10] and s["test"] == [10, 11]


class TestPreprocessStore:
    def test_store_contents(self, tiny_dataset):
        (path,) = find_stores(tiny_dataset)
        st = SequenceStore(path)
        n, size = st.n_frames, st.size
        assert size == 96 and n == 60  # 2.4 s at 25 fps
        assert st["frames"].shape == (n, size, size, 3)
        assert st["uv"].shape == (n, size, size, 2) and st["uv"].dtype == np.float16
        assert st["mask"].shape == (n, size, size)
        assert st["landmarks"].shape == (n, 468, 3)
        assert st["pose"].shape == (n, 7)
        assert st["audio_features"].shape == (n, 16, 80)
        assert abs(st["audio"].shape[0] / 16000 - n / 25) < 1 / 25
        a = st.attrs
        assert a["complete"] and a["face_model"]["n_components"] == 0
        assert a["frames_without_face"] == 0
        assert sum(b - a_ for a_, b in a["splits"].values()) == n
        # The face sits in the middle of the crop, the UVs are valid where the mask is set.
        uv = np.asarray(st["uv"][10]).astype(np.float32)
        mask = np.asarray(st["mask"][10])
        assert ((uv[..., 0] >= 0) == (mask > 0)).all()
        assert 0.15 < (mask > 0).mean() < 0.7
        assert (mask == 2).sum() > 20
        lm = np.asarray(st["landmarks"][10])
        assert lm[:, :2].min() > 0 and lm[:, :2].max() < size
        manifest = json.loads((tiny_dataset / MANIFEST).read_text())
        assert manifest["sequences"][0]["frames"] == n
        assert list(tiny_dataset.glob("runs/preprocess-*/config.yaml"))

    def test_landmarks_match_a_fresh_detection_on_the_crop(self, tiny_dataset):
        st = SequenceStore(find_stores(tiny_dataset)[0])
        frame = np.asarray(st["frames"][30])
        with LandmarkDetector(static=True) as det:
            fresh = det(frame)
        stored = np.asarray(st["landmarks"][30])
        # the store's landmarks were found on the full frame; on the crop they agree within
        # a couple of pixels (different input resolution)
        assert np.median(np.linalg.norm(fresh[:, :2] - stored[:, :2], axis=1)) < 2.0

    def test_rerun_skips_and_setting_change_rebuilds(
        self, tiny_dataset, talking_head, tiny_overrides, tmp_path
    ):
        out = tmp_path / "copy"
        shutil.copytree(tiny_dataset, out)
        cfg = _cfg(*tiny_overrides)
        (r,) = preprocess([talking_head], out, cfg)
        assert r.status == "skipped"
        cfg2 = _cfg(*tiny_overrides, "audio.name=mfcc")
        (r2,) = preprocess([talking_head], out, cfg2)
        assert r2.status == "done"
        assert SequenceStore(r2.store)["audio_features"].shape[-1] == 39

    def test_failure_leaves_no_finished_store_and_resumes(
        self, talking_head, tiny_overrides, tmp_path, monkeypatch
    ):
        import nvp.data.preprocess as pp

        def boom(*a, **k):
            raise RuntimeError("simulated crash during rasterization")

        monkeypatch.setattr(pp, "rasterize_into", boom)
        cfg = _cfg(*tiny_overrides)
        (r,) = preprocess([talking_head], tmp_path, cfg)
        assert r.status == "failed" and "simulated crash" in r.message
        assert find_stores(tmp_path) == []
        partial = list(tmp_path.glob(".*.partial"))
        assert partial  # kept for resuming
        g = zarr.open_group(str(partial[0]), mode="r")
        assert not g.attrs["complete"] and "frames" in g.attrs["stages"]
        monkeypatch.undo()
        calls = []
        real_track = pp.LandmarkDetector

        class Spy(real_track):
            def __call__(self, frame):
                calls.append(1)
                return super().__call__(frame)

        monkeypatch.setattr(pp, "LandmarkDetector", Spy)
        (r2,) = preprocess([talking_head], tmp_path, cfg)
        assert r2.status == "done" and not calls  # landmarks and crops were resumed
        assert not list(tmp_path.glob(".*.partial"))


class TestBuildFaceModel:
    def test_build_and_refit(self, tiny_dataset, tmp_path, capsys):
        ds = tmp_path / "ds"
        shutil.copytree(tiny_dataset, ds)
        assert main(["build-face-model", str(ds), "n_components=8"]) == 0
        out = capsys.readouterr().out
        assert "explained variance" in out
        st = SequenceStore(find_stores(ds)[0])
        k = st.attrs["face_model"]["n_components"]
        assert 1 <= k <= 8
        assert st["expression"].shape == (st.n_frames, k)
        from nvp.tracking.face_model import FaceModel

        model = FaceModel.load(ds / "face_model.npz")
        assert model.hash == st.attrs["face_model"]["hash"]
        # the expressions follow the mouth: the first coefficient varies over the clip
        e = np.asarray(st["expression"][...])
        assert e[:, 0].std() > 0.1
        # preprocessing more videos into this dataset now uses its model
        assert json.loads((ds / MANIFEST).read_text())["face_model"] == "face_model.npz"


class TestInspect:
    def test_summary_and_sheet(self, tiny_dataset, tmp_path, capsys):
        store = find_stores(tiny_dataset)[0]
        sheet = tmp_path / "sheet.png"
        assert main(["inspect", str(store), "--sheet", str(sheet), "--frames", "4"]) == 0
        out = capsys.readouterr().out
        assert "frames: 60" in out and "frames_without_face: 0" in out
        from PIL import Image

        im = Image.open(sheet)
        assert im.size == (4 * 96, 2 * 96)


class TestBadInput:
    """Each bad input: exit code 1, one line naming the file and the problem, no store."""

    def _run(self, capsys, tmp_path, path, *extra):
        out = tmp_path / "out"
        code = main(["preprocess", str(path), "--out", str(out), "crop.size=64", *extra])
        err = capsys.readouterr()
        assert code == 1
        assert not find_stores(out) if out.exists() else True
        assert not list(out.glob("*.zarr")) if out.exists() else True
        return err.out + err.err

    def test_missing_file(self, capsys, tmp_path):
        msg = self._run(capsys, tmp_path, tmp_path / "nope.mp4")
        assert "nope.mp4" in msg and "no such file" in msg

    def test_not_a_video(self, capsys, tmp_path):
        p = tmp_path / "notes.mp4"
        p.write_text("hello, this is not a video\n" * 20)
        msg = self._run(capsys, tmp_path, p)
        assert "notes.mp4" in msg and "FAILED" in msg

    def test_corrupt_bytes(self, capsys, tmp_path, talking_head):
        data = bytearray(talking_head.read_bytes())
        rng = np.random.default_rng(0)
        for i in rng.integers(len(data) // 4, len(data), 400):
            data[i] ^= 0xFF
        p = tmp_path / "garbled.mp4"
        p.write_bytes(bytes(data[: len(data) // 2]))
        msg = self._run(capsys, tmp_path, p)
        assert "garbled.mp4" in msg

    def test_no_audio(self, capsys, tmp_path):
        from nvp.io.synthetic import make_silent_video

        p = make_silent_video(tmp_path / "mute.mp4", seconds=1.2)
        msg = self._run(capsys, tmp_path, p)
        assert "mute.mp4" in msg and "no audio" in msg

    def test_no_face(self, capsys, tmp_path):
        from nvp.io.synthetic import make_noise_video

        p = make_noise_video(tmp_path / "noise.mp4", seconds=1.2)
        msg = self._run(capsys, tmp_path, p)
        assert "noise.mp4" in msg and "no face" in msg

    def test_too_short(self, capsys, tmp_path):
        from nvp.io.synthetic import make_talking_head

        p = make_talking_head(tmp_path / "short.mp4", seconds=0.4, size=96)
        msg = self._run(capsys, tmp_path, p)
        assert "short.mp4" in msg and "too short" in msg


def _compose(src: Path, dst: Path, fn) -> Path:
    """Re-encode ``src`` with every frame passed through ``fn(index, frame)``, audio kept."""
    from nvp.io import iter_frames, load_audio, write_video

    frames = [fn(i, f) for i, _, f in iter_frames(src, 25.0)]
    return write_video(dst, frames, 25.0, audio=load_audio(src), sample_rate=16000)


class TestFaceGaps:
    def test_short_gap_interpolated_long_gap_missing(self, talking_head, tmp_path):
        rng = np.random.default_rng(0)

        def blank(i, f):
            if i in (10, 11) or 30 <= i < 40:
                return rng.integers(0, 255, f.shape, dtype=np.uint8)
            return f

        clip = _compose(talking_head, tmp_path / "gaps.mp4", blank)
        cfg = _cfg("crop.size=64", "landmarks.max_gap=3", "min_seconds=0.5")
        (r,) = preprocess([clip], tmp_path / "ds", cfg)
        assert r.status == "done", r.message
        flags = np.asarray(SequenceStore(r.store)["face_flag"][...])
        assert flags[10] == 1 and flags[11] == 1  # interpolated
        assert (flags[30:40] == 2).sum() >= 8  # too long: missing (tracking may bridge one)
        assert (flags[:10] == 0).all()
        cfg2 = _cfg("crop.size=64", "landmarks.min_face_fraction=0.95", "min_seconds=0.5")
        (r2,) = preprocess([clip], tmp_path / "ds2", cfg2)
        assert r2.status == "failed" and "found in only" in r2.message

    def test_several_faces_takes_largest_with_warning(self, talking_head, tmp_path, caplog):
        import cv2

        def two(i, f):
            small = cv2.resize(f, (f.shape[1] // 2, f.shape[0] // 2))
            canvas = np.zeros((f.shape[0], f.shape[1] + small.shape[1], 3), np.uint8)
            canvas[:, : f.shape[1]] = f
            canvas[: small.shape[0], f.shape[1] :] = small
            return canvas

        clip = _compose(talking_head, tmp_path / "two.mp4", two)
        with caplog.at_level("WARNING"):
            (r,) = preprocess([clip], tmp_path / "ds", _cfg("crop.size=64", "min_seconds=0.5"))
        assert r.status == "done", r.message
        st = SequenceStore(r.store)
        assert st.attrs["frames_with_several_faces"] > 0
        assert "several faces" in caplog.text
        # the crop follows the large face on the left
        sq = np.asarray(st["crop"][0])
        assert sq[0] + sq[2] / 2 < 160


class TestParallel:
    def test_two_workers(self, talking_head, tmp_path):
        import shutil as sh

        sh.copy(talking_head, tmp_path / "a.mp4")
        sh.copy(talking_head, tmp_path / "b.mp4")
        cfg = _cfg("crop.size=64", "workers=2", "min_seconds=0.5")
        res = preprocess([tmp_path], tmp_path / "ds", cfg)
        assert [r.status for r in res] == ["done", "done"]
        a, b = (SequenceStore(r.store) for r in res)
        np.testing.assert_array_equal(a["landmarks"][...], b["landmarks"][...])
        manifest = json.loads((tmp_path / "ds" / MANIFEST).read_text())
        assert [s["name"] for s in manifest["sequences"]] == ["a", "b"]
