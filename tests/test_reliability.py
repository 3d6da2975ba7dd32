"""Reliability: concurrent writers, tampered files, bad paths and settings, interruptions.

Each case is what a user (or a scheduler running several jobs) may do; each must end in a
consistent state and, where it cannot go on, in one clear line naming the file and the
problem (exit status 1, no traceback). Concurrent cases use real processes. The bad inputs
that other test modules check in depth (``test_preprocess.py``, ``test_reenact.py``,
``test_io.py``) are run here once more through the command line, as one table.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from nvp.cli import main
from nvp.data.store import SequenceStore, StoreWriter, find_stores, store_problems
from nvp.errors import InputError
from nvp.io.lock import holder_path, writer_lock

REPO = Path(__file__).resolve().parents[1]

#: Preprocessing overrides of the concurrent runs (small and fast, the same code paths).
FAST = ["store.shard_frames=16", "min_seconds=0.5", "audio.name=mel"]


def _nvp(*args: str, stderr=subprocess.PIPE) -> subprocess.Popen:
    """``nvp ARGS`` in a fresh process (stdout and, by default, stderr captured as text)."""
    return subprocess.Popen(
        [sys.executable, "-m", "nvp.cli", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )


def _finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _wait_for(cond, timeout: float = 120, what: str = "condition") -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _no_traceback(err: str) -> None:
    assert "Traceback" not in err and "unexpected error" not in err, err[-2000:]


def _partials(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".partial" in p.name]


# ----------------------------------------------------------------- concurrent preprocessing


@pytest.mark.parametrize("sizes", [(64, 80), (64, 64)], ids=["different-settings", "same"])
def test_concurrent_preprocess_ends_consistent(talking_head, tmp_path, sizes):
    """Two ``nvp preprocess`` runs into one dataset, the second started while the first
    works: the store ends complete and consistent (every array at one size), both runs
    succeed, no temporary folder stays, and a rerun with the final settings skips it."""
    out = tmp_path / "ds"
    a = _nvp("preprocess", str(talking_head), "--out", str(out), f"crop.size={sizes[0]}", *FAST)
    _wait_for(lambda: holder_path(out / "talker.zarr").exists(), what="the first run's lock")
    b = _nvp("preprocess", str(talking_head), "--out", str(out), f"crop.size={sizes[1]}", *FAST)
    (ra, oa, ea), (rb, ob, eb) = _finish(a), _finish(b)
    assert (ra, rb) == (0, 0), ea[-2000:] + eb[-2000:]
    _no_traceback(ea + eb)
    store = SequenceStore(out / "talker.zarr")  # opens: complete and consistent
    assert store_problems(store.group) == []
    assert store["frames"].shape[1] == store["uv"].shape[1] == store.size == sizes[1]
    assert not _partials(out) and not holder_path(out / "talker.zarr").exists()
    statuses = sorted(line.split()[0] for line in (oa + ob).splitlines() if "talker:" in line)
    assert statuses == (["done", "done"] if sizes[0] != sizes[1] else ["done", "skipped"])
    assert (
        main(["preprocess", str(talking_head), "--out", str(out), f"crop.size={sizes[1]}", *FAST])
        == 0
    )
    assert json.loads((out / "dataset.json").read_text())["sequences"][0]["size"] == sizes[1]


def test_second_writer_waits_for_the_holder_and_names_it(talking_head, tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    log = tmp_path / "b.err"
    with writer_lock(out / "talker.zarr", what="sequence store"), log.open("w") as err_file:
        args = ["preprocess", str(talking_head), "--out", str(out), "crop.size=64", *FAST]
        b = _nvp(*args, stderr=err_file)
        # the waiting run says whom it waits for, then goes on once the holder is done
        waiting = f"waiting for process {os.getpid()} on "
        _wait_for(lambda: waiting in log.read_text() or b.poll() is not None, what="waiting")
        assert b.poll() is None and waiting in log.read_text()
    rc, _, _ = _finish(b)
    err = log.read_text()
    assert rc == 0, err[-2000:]
    line = next(x for x in err.splitlines() if waiting in x)
    assert "talker.zarr" in line and "pytest" in line  # the store and the holder's command
    assert SequenceStore(out / "talker.zarr").size == 64


def test_lock_timeout_zero_stops_at_once_naming_the_holder(talking_head, tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    with writer_lock(out / "talker.zarr", what="sequence store"):
        args = ["preprocess", str(talking_head), "--out", str(out), "lock_timeout=0", *FAST]
        rc, stdout, err = _finish(_nvp(*args))
    assert rc == 1
    assert f"another nvp process is writing this sequence store: process {os.getpid()}" in stdout
    assert "talker.zarr" in stdout
    _no_traceback(err)
    assert not (out / "talker.zarr").exists() and not _partials(out)


def test_a_killed_holder_frees_the_lock(tmp_path):
    """The OS releases the lock of a process killed with SIGKILL: no stale lock remains."""
    target = tmp_path / "x.zarr"
    code = (
        "import sys, time; from nvp.io.lock import writer_lock\n"
        f"with writer_lock({str(target)!r}, what='store'):\n"
        "    print('held', flush=True); time.sleep(60)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    with (
        pytest.raises(InputError, match=f"process {p.pid} on"),
        writer_lock(target, what="store", timeout=0),
    ):
        pass
    p.send_signal(signal.SIGKILL)
    p.wait()
    with writer_lock(target, what="store", timeout=0):  # free at once
        assert json.loads(holder_path(target).read_text())["pid"] == os.getpid()


# ----------------------------------------------------------------------- store consistency


@pytest.fixture
def store_copy(tiny_dataset, tmp_path) -> Path:
    ds = tmp_path / "ds"
    shutil.copytree(tiny_dataset, ds, ignore=shutil.ignore_patterns("runs"))
    return ds


def test_inconsistent_store_is_refused_and_rebuilt(
    store_copy, talking_head, tiny_overrides, capsys
):
    """A store whose arrays disagree (frames at one size, UV maps at another: what two
    unlocked writers produced) is refused by every reader with one line, and rebuilt by
    the next ``nvp preprocess`` instead of being skipped as unchanged."""
    (path,) = find_stores(store_copy)
    g = zarr.open_group(str(path), mode="a", zarr_format=3)
    n = g["uv"].shape[0]
    g.create_array("uv", shape=(n, 64, 64, 2), dtype=np.float16, overwrite=True)
    problems = store_problems(g)
    assert problems == ["uv is (64, 64, 2) per frame, expected (96, 96, 2) (size 96)"]
    with pytest.raises(InputError, match=r"store is inconsistent \(uv is"):
        SequenceStore(path)
    for cmd in (["inspect", str(path)], ["train-renderer", str(path), "trainer.max_steps=1"]):
        assert main(cmd) == 1
        err = capsys.readouterr().err
        assert "store is inconsistent" in err and str(path) in err
    assert main(["preprocess", str(talking_head), "--out", str(store_copy), *tiny_overrides]) == 0
    assert "done    talker" in capsys.readouterr().out
    assert store_problems(SequenceStore(path).group) == []


def test_store_problems_name_each_disagreement(tiny_dataset, tmp_path):
    (src,) = find_stores(tiny_dataset)
    path = tmp_path / src.name
    shutil.copytree(src, path)
    g = zarr.open_group(str(path), mode="a", zarr_format=3)
    assert store_problems(g) == []
    g.attrs["face_model"] = {**g.attrs["face_model"], "n_components": 7}
    g.attrs["features"] = {**g.attrs["features"], "window": 8}
    del g["landmarks"]
    problems = store_problems(g)
    assert problems == ["array 'landmarks' is missing"]  # structure first
    g.create_array("landmarks", shape=(3, 468, 3), dtype=np.float32)
    text = "; ".join(store_problems(g))
    assert "landmarks has 3 frames" in text
    assert "expression has 0 coefficients, the face model 7" in text
    assert "audio_features has window 16, the recorded features 8" in text


def test_a_stage_without_its_arrays_is_redone(tmp_path):
    """A temporary store whose stage is marked done but whose arrays are gone (another
    process deleted them) is not taken as resumable."""
    w = StoreWriter(tmp_path / "a.zarr", input_key="k")
    w.mark_stage("track")
    assert not w.stage_done("track")
    for name in ("landmarks", "face_flag", "crop"):
        w.write(name, np.zeros((4, 3), np.float32))
    assert w.stage_done("track")
    w.discard()
    with pytest.raises(RuntimeError, match="not marked complete"):
        StoreWriter(tmp_path / "b.zarr", input_key="k").finalize()
    assert not (tmp_path / "b.zarr").exists()


# --------------------------------------------------------------------- tampered target files


@pytest.mark.parametrize("part", ["renderer.ckpt", "mapping.npz", "a2e.ckpt"])
def test_a_target_file_altered_in_place_is_refused(tiny_target, tmp_path, part, capsys):
    target = tmp_path / "T"
    shutil.copytree(tiny_target, target)
    f = target / part
    data = bytearray(f.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 16] = bytes(b ^ 0xFF for b in data[mid : mid + 16])  # same size
    f.write_bytes(bytes(data))
    out = tmp_path / "o.mp4"
    assert main(["reenact", "--target", str(target), "--audio", "x.wav", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"{f}: this file was altered after `nvp make-target`" in err
    assert not out.exists()


# ------------------------------------------------------------ output paths and bad settings


def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot write into (a read-only one; for root, which ignores
    permissions, a folder of the kernel's read-only sysfs)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    for cand in (ro, Path("/sys/kernel")):
        try:
            with tempfile.NamedTemporaryFile(dir=cand):
                pass
        except OSError:
            return cand
    pytest.skip("no folder here refuses writes to this user")


def test_output_paths_are_checked_before_any_work(talking_head, tmp_path, capsys):
    a_file = tmp_path / "a_regular_file"
    a_file.write_text("x")
    ro = _unwritable_folder(tmp_path)
    cases = [
        (["preprocess", str(talking_head), "--out", str(a_file)], "is a file, not a folder"),
        (["preprocess", str(talking_head), "--out", str(a_file / "ds")], "a parent is a file"),
        (["preprocess", str(talking_head), "--out", str(ro)], "not writable"),
        (["preprocess", str(talking_head), "--out", str(ro / "new")], "cannot create"),
        (
            ["reenact", "--target", "T", "--audio", "a.wav", "--out", str(tmp_path / "noext")],
            "cannot tell the output format from no suffix; end the name with one of .mp4",
        ),
        (
            ["reenact", "--target", "T", "--audio", "a.wav", "--out", str(tmp_path / "o.avi")],
            "cannot tell the output format from '.avi'",
        ),
        (["say", "hi", "--target", "T", "--out", str(tmp_path)], "cannot tell the output format"),
        (["evaluate", "--target", "T", "--out", str(a_file)], "is a file, not a folder"),
    ]
    for argv, message in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert message in err, (argv, err)
        _no_traceback(err)
    assert a_file.read_text() == "x" and not list(tmp_path.glob("noext*"))


@pytest.mark.parametrize(
    "setting, message",
    [
        ("crop.size=0", "crop.size must be at least 8 px, got 0"),
        ("crop.scale=-1", "crop.scale must be > 0"),
        ("fps=0", "fps must be > 0"),
        ("sample_rate=100", "sample_rate must be at least 8000 Hz"),
        ("store.shard_frames=0", "store.shard_frames must be >= 1"),
        ("crop.szie=64", "unknown config key 'crop.szie'"),
    ],
)
def test_bad_settings_stop_before_anything_is_written(
    talking_head, tmp_path, capsys, setting, message
):
    out = tmp_path / "ds"
    assert main(["preprocess", str(talking_head), "--out", str(out), setting]) == 1
    err = capsys.readouterr().err
    assert message in err
    _no_traceback(err)
    assert not out.exists()  # no run folder, no store, no .partial


# -------------------------------------------------------------------------- interruptions


def test_killed_reenact_leaves_nothing_a_rerun_keeps(tiny_target, speech_wav, tmp_path):
    """SIGKILL during ``nvp reenact`` leaves a partial file beside the output; the rerun
    (which starts again: reenactment does not resume) removes it and writes the video."""
    from nvp.io import load_audio, write_wav

    speech = load_audio(speech_wav, 16000)
    long_wav = write_wav(tmp_path / "long.wav", np.tile(speech, 6), 16000)
    out = tmp_path / "out" / "o.mp4"
    args = ["reenact", "--target", str(tiny_target), "--audio", str(long_wav), "--out", str(out)]
    p = _nvp(*args, "min_speech_seconds=0", "--device", "cpu")
    _wait_for(lambda: bool(_partials(out.parent)) or p.poll() is not None, what="a partial")
    p.send_signal(signal.SIGKILL)
    p.wait()
    (stale,) = _partials(out.parent)
    assert not out.exists()
    rc, _, err = _finish(_nvp(*args, "min_speech_seconds=0", "--device", "cpu"))
    assert rc == 0, err[-2000:]
    assert out.is_file() and not _partials(out.parent) and not stale.exists()


def test_a_live_writers_partial_is_kept(tmp_path):
    from nvp.io.video import remove_stale_partials

    out = tmp_path / "o.mp4"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    gone = tmp_path / f".o.partial-{int(dead.stdout)}-abcd1234.mp4"
    live = tmp_path / f".o.partial-{os.getppid()}-abcd1234.mp4"
    other = tmp_path / f".p.partial-{int(dead.stdout)}-abcd1234.mp4"
    for f in (gone, live, other):
        f.write_bytes(b"x")
    assert remove_stale_partials(out) == [gone]
    assert live.exists() and other.exists()


def test_interrupt_messages_say_what_resumes(monkeypatch, capsys):
    import nvp.cli as cli

    def interrupted(args):
        raise KeyboardInterrupt

    for cmd, argv, words in [
        (
            "reenact",
            ["reenact", "--target", "T", "--audio", "a", "--out", "o.mp4"],
            "does not resume",
        ),
        ("preprocess", ["preprocess", "x", "--out", "d"], "rerun the same command to resume"),
        ("train-renderer", ["train-renderer", "s"], "resume=<its run directory>"),
    ]:
        monkeypatch.setattr(cli, f"cmd_{cmd.replace('-', '_')}", interrupted)
        assert cli.main(argv) == 130
        assert words in capsys.readouterr().err
    assert set(cli.AFTER_INTERRUPT) == set(cli.build_parser()._subparsers._group_actions[0].choices)


# -------------------------------------------------------------- messages that name the files


def test_av_length_mismatch_is_reported_with_the_numbers(talking_head, tmp_path, caplog):
    from nvp.io import iter_frames, load_audio, write_video

    audio = load_audio(talking_head, 16000)
    clip = write_video(
        tmp_path / "cut.mp4",
        (f for _, _, f in iter_frames(talking_head, 25)),
        25,
        audio=audio[: len(audio) - 8000],  # 0.5 s of audio missing
        sample_rate=16000,
    )
    with caplog.at_level("WARNING", logger="nvp.data.preprocess"):
        assert main(["preprocess", str(clip), "--out", str(tmp_path / "ds"), *FAST]) == 0
    (msg,) = [r.getMessage() for r in caplog.records if "audio track is" in r.getMessage()]
    assert "the audio track is 1.90 s long, the video 2.40 s (60 frames at 25 fps)" in msg
    assert str(clip) in msg


@pytest.mark.realdata
def test_truncated_grid_clip_warns(real_data, tmp_path, caplog):
    src = sorted((real_data / "video" / "grid").glob("*.mpg"))[0]
    cut = tmp_path / "cut.mpg"
    cut.write_bytes(src.read_bytes()[:300_000])
    with caplog.at_level("WARNING", logger="nvp.data.preprocess"):
        assert main(["preprocess", str(cut), "--out", str(tmp_path / "ds"), *FAST]) == 0
    assert any("the audio track is 1.9" in r.getMessage() for r in caplog.records)


def test_mixed_audio_features_name_the_stores(a2e_dataset, tmp_path, capsys):
    from nvp.a2e.data import feature_groups
    from nvp.config import CONF_DIR

    ds = tmp_path / "ds"
    shutil.copytree(a2e_dataset, ds, ignore=shutil.ignore_patterns("runs", "*.mapping.npz"))
    g = zarr.open_group(str(ds / "talker1.zarr"), mode="a", zarr_format=3)
    g.attrs["features"] = {**g.attrs["features"], "name": "whisper"}
    tiny = str(CONF_DIR / "a2e" / "tiny.yaml")
    assert main(["train-a2e", str(ds), "--config", tiny, f"out={tmp_path / 'runs'}"]) == 1
    err = capsys.readouterr().err
    assert "different audio features (mel (window 16, dim 80): talker0, talker2; whisper" in err
    assert "talker1" in err and not (tmp_path / "runs").exists()
    sigs = [{"name": "mel", "window": 16, "dim": 80, "n_mels": m} for m in (80, 80, 64)]
    text = feature_groups(["a", "b", "c"], sigs)
    assert text.startswith("mel (window 16, dim 80, settings ") and text.count("settings") == 2


# ---------------------------------------------------------------- bad inputs, one table


def _bad_inputs(tmp: Path, clip: Path) -> list[tuple[list[str], Path, str]]:
    """(command, the file the message must name, words of the message)."""
    from nvp.io import write_wav
    from nvp.io.synthetic import make_noise_video, make_silent_video

    empty = tmp / "empty.mp4"
    empty.write_bytes(b"")
    cut = tmp / "truncated.mp4"
    cut.write_bytes(clip.read_bytes()[:5000])
    text = tmp / "notes.mp4"
    text.write_text("not a video\n" * 50)
    png = tmp / "photo.mp4"
    import cv2

    cv2.imwrite(str(tmp / "photo.png"), np.full((64, 64, 3), 128, np.uint8))
    (tmp / "photo.png").rename(png)
    silent = make_silent_video(tmp / "mute.mp4", seconds=1.2)
    noface = make_noise_video(tmp / "noface.mp4", seconds=1.2)
    quiet = write_wav(tmp / "quiet.wav", np.zeros(32000, np.float32), 16000)
    pre = ["preprocess", "--out", str(tmp / "ds")]
    return [
        ([*pre, str(empty)], empty, "file is empty"),
        ([*pre, str(cut)], cut, ""),
        ([*pre, str(text)], text, "not a readable video"),
        ([*pre, str(png)], png, ""),
        ([*pre, str(silent)], silent, "no audio track"),
        ([*pre, str(noface)], noface, "no face found"),
        ([*pre, str(tmp / "missing.mp4")], tmp / "missing.mp4", "no such file"),
        (
            ["reenact", "--target", str(tmp), "--audio", str(quiet), "--out", str(tmp / "o.mp4")],
            tmp,
            "not a target folder",
        ),
    ]


def test_bad_inputs_one_line_each(talking_head, tmp_path, capsys):
    for argv, path, words in _bad_inputs(tmp_path, talking_head):
        rc = main(argv)
        cap = capsys.readouterr()
        err = cap.err + cap.out
        assert rc == 1, argv
        assert str(path) in err and words in err, (argv, err)
        _no_traceback(err)
