"""What an experiment module receives: :class:`ExperimentContext` (its directory, the preset,
resumable runs, progress messages) and the record of a failed run.

A *run* (training one model, computing one learning curve, ...) finishes by writing its result
to ``done.json`` atomically. ``--resume`` skips every run that has one; a run that raised leaves
an ``error.txt`` next to its partial files, is listed in the report, and the other runs and the
analysis go on with what finished.
"""

from __future__ import annotations

import datetime as _dt
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synknow.experiments import _io
from synknow.experiments.presets import Preset

__all__ = ["RunFailure", "ExperimentContext"]


@dataclass
class RunFailure:
    experiment: str
    run: str
    error: str

    def __str__(self) -> str:
        return f"{self.experiment}/{self.run}: {self.error}"


class ExperimentContext:
    """What an experiment module gets: its directory, the preset, resumable runs, progress."""

    def __init__(
        self,
        out: Path,
        experiment: str,
        preset: Preset,
        *,
        progress: bool = True,
        failures: list[RunFailure] | None = None,
        cache: dict[str, Any] | None = None,
    ):
        self.out = out
        self.experiment = experiment
        self.preset = preset
        self.progress = progress
        self.dir = out / experiment
        self.shared_dir = out / "shared"
        self.failures = failures if failures is not None else []
        self.cache = cache if cache is not None else {}  # in-process memo shared by experiments
        self.runs_done = 0
        self.runs_skipped = 0
        self.dir.mkdir(parents=True, exist_ok=True)

    def log(self, message: str) -> None:
        if self.progress:
            print(f"[{self.experiment}] {message}", file=sys.stderr, flush=True)

    def run(
        self,
        run_id: str,
        fn: Callable[[Path], dict[str, Any]],
        *,
        shared: bool = False,
    ) -> dict[str, Any] | None:
        """Runs ``fn(run_dir)`` unless ``run_dir/done.json`` exists; returns its result.

        The result (a JSON-serialisable dict) is stored in ``done.json``, written atomically
        when ``fn`` returns. If ``fn`` raises, the error is recorded (``error.txt`` and the
        report) and ``None`` is returned; a later ``--resume`` retries the run.
        """
        root = self.shared_dir if shared else self.dir
        run_dir = root / "runs" / run_id
        done = run_dir / "done.json"
        if done.is_file():
            self.runs_skipped += 1
            return _io.read_json(done)["result"]
        failed_key = f"failed:{run_dir}"
        if failed_key in self.cache:  # a shared run that already failed in this process
            return None
        if run_dir.exists():  # leftovers of an interrupted or failed attempt
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        start = time.perf_counter()
        try:
            result = fn(run_dir)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:  # recorded, reported, and retried by --resume
            _io.write_text(run_dir / "error.txt", traceback.format_exc())
            self.failures.append(RunFailure(self.experiment, run_id, f"{type(e).__name__}: {e}"))
            self.cache[failed_key] = True
            self.log(f"run {run_id} failed: {type(e).__name__}: {e}")
            return None
        seconds = time.perf_counter() - start
        _io.write_json(
            done,
            {
                "run": run_id,
                "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(),
                "seconds": seconds,
                "result": result,
            },
        )
        self.runs_done += 1
        return _io.read_json(done)["result"]  # exactly what a resumed run would see

    def path(self, name: str) -> Path:
        return self.dir / name

    def failures_here(self) -> list[RunFailure]:
        return [f for f in self.failures if f.experiment == self.experiment]
