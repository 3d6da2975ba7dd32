"""The run-log reader shared by sweeps, ablations and experiments (``nvp.runs``)."""

from __future__ import annotations

import math

from nvp.runs import METRICS_CSV, RunLog

CSV = """epoch,step,train/loss,val/psnr,val/ssim
0,9,0.5,,
0,9,,20.0,0.80
1,19,0.4,,
1,19,,22.5,0.85
2,29,0.3,,
2,29,,21.0,nan
"""


def test_final_best_values_and_steps(tmp_path):
    (tmp_path / METRICS_CSV).parent.mkdir(parents=True)
    (tmp_path / METRICS_CSV).write_text(CSV)
    log = RunLog.read(tmp_path)
    assert log.values("val/psnr") == [20.0, 22.5, 21.0]
    assert log.values("val/ssim") == [0.80, 0.85]  # the NaN is not a finite value
    assert math.isnan(log.final("val/ssim")) and log.final("train/loss") == 0.3
    assert log.validations("val/psnr") == 3 and log.steps == 30
    # the best validation by PSNR is epoch 1's (both of its rows read together)
    assert log.best(["val/psnr", "val/ssim", "train/loss"], "val/psnr", True) == {
        "val/psnr": 22.5,
        "val/ssim": 0.85,
        "train/loss": 0.4,
    }
    lowest = log.best(["val/psnr"], "val/psnr", False)
    assert lowest == {"val/psnr": 20.0}
    assert math.isnan(log.best(["x"], "val/psnr", True)["x"])


def test_missing_log_reads_empty(tmp_path):
    log = RunLog.read(tmp_path / "never-ran")
    assert log.rows == [] and log.steps == 0 and math.isnan(log.final("val/psnr"))
    assert math.isnan(log.best(["val/psnr"], "val/psnr", True)["val/psnr"])
