"""`PredictReport`: what a prediction run (catalogues or cubes) did, for the API and the command line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class PredictReport:
    """What a prediction run did: rows, parts written and skipped (resume), NaN rows, speed."""

    out_dir: Path
    kind: str  # 'catalog' or 'cubes'
    inputs: list[str]
    columns: list[str]
    n_rows: int = 0
    n_parts: int = 0
    n_parts_written: int = 0
    n_parts_skipped: int = 0
    n_rows_predicted: int = 0
    n_nan_rows: int = 0
    seconds: float = 0.0
    maps: list[Path] = field(default_factory=list)

    @property
    def rows_per_s(self) -> float:
        """Rows predicted in this run per second of wall time."""
        return self.n_rows_predicted / self.seconds if self.seconds > 0 else float("nan")

    def summary(self) -> str:
        """One line for the command line."""
        what = "maps" if self.kind == "cubes" else "parts"
        speed = (f"{self.rows_per_s:,.0f} rows/s" if self.n_rows_predicted else "nothing left to predict")
        return (f"{self.n_rows} rows in {self.n_parts} {what} ({self.n_parts_written} written, "
                f"{self.n_parts_skipped} already done), {self.n_nan_rows} rows with missing or implausible "
                f"magnitudes -> NaN predictions; "
                f"{speed}")
