"""Reading a training run's ``logs/metrics.csv`` (Lightning's CSVLogger): the one reader
that sweeps, ablations and experiments share.

Lightning writes one row per logging event; a row holds the values logged at that step and
empty cells for the others (training rows, validation rows). :class:`RunLog` keeps, per row,
the numeric values only.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: Where a run directory keeps its metrics.
METRICS_CSV = Path("logs") / "metrics.csv"


def _number(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return None


@dataclass
class RunLog:
    """The rows of one run's ``metrics.csv`` (numeric cells only), in logging order."""

    rows: list[dict[str, float]]

    @classmethod
    def read(cls, path: str | Path) -> RunLog:
        """A run directory (its ``logs/metrics.csv``) or the CSV file itself; no rows when
        the file does not exist (a run stopped before its first log step)."""
        p = Path(path)
        if p.is_dir():
            p = p / METRICS_CSV
        if not p.is_file():
            return cls([])
        with p.open(newline="") as f:
            rows = [
                {k: v for k, v in ((k, _number(x)) for k, x in r.items()) if v is not None}
                for r in csv.DictReader(f)
            ]
        return cls(rows)

    def values(self, key: str, *, finite: bool = True) -> list[float]:
        """Every value logged under ``key``, in order (only finite ones by default)."""
        out = [r[key] for r in self.rows if key in r]
        return [v for v in out if math.isfinite(v)] if finite else out

    def final(self, key: str) -> float:
        """The last value logged under ``key`` (NaN when never logged)."""
        vals = self.values(key, finite=False)
        return vals[-1] if vals else math.nan

    def validations(self, monitor: str) -> int:
        """How many rows carry ``monitor`` (the validations that ran)."""
        return len(self.values(monitor, finite=False))

    @property
    def steps(self) -> int:
        """Optimisation steps logged (the largest ``step`` + 1; 0 without rows)."""
        steps = [int(r["step"]) for r in self.rows if "step" in r]
        return max(steps) + 1 if steps else 0

    def best(self, keys: Iterable[str], monitor: str, higher_is_better: bool) -> dict[str, float]:
        """``keys`` as logged at the validation whose ``monitor`` is best (the first best;
        the rows of the same epoch and step together): the best checkpoint's validation.
        NaN for keys not logged there, or without a finite ``monitor``."""
        keys = list(keys)
        cand = [r for r in self.rows if monitor in r and math.isfinite(r[monitor])]
        if not cand:
            return dict.fromkeys(keys, math.nan)
        sign = -1.0 if higher_is_better else 1.0
        pick = min(cand, key=lambda r: sign * r[monitor])
        at = (pick.get("epoch"), pick.get("step"))
        same = [r for r in self.rows if (r.get("epoch"), r.get("step")) == at]
        return {k: next((r[k] for r in same if k in r), math.nan) for k in keys}
