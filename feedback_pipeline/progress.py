"""Where a long run is: rows done, rows/s and elapsed time per stage, for a terminal and the UI.

A stage's figures are counted where its rows pass anyway: the IO manager counts every batch a
streamed output writes and every batch a streamed input is read in, so no stage carries its own
counter and an in-process run, a process-per-step run and a `dagster dev` run report alike.

Two readers:
- Asset metadata: each output gets `rows_per_second` and `elapsed_seconds` beside Dagster's
  `dagster/row_count` (`StageProgress.metadata`).
- A terminal: when `FEEDBACK_PROGRESS_DIR` is set (the CLI sets it for `run` and `demo`), each
  step writes a small JSON snapshot there at most every `SNAPSHOT_SECONDS` (atomically: a
  temporary file renamed into place), and `ProgressDisplay`, a thread in the CLI, draws one tqdm
  bar per running stage and prints one line per finished stage. Step processes inherit the
  variable, so the multiprocess executor reports the same way. Snapshots hold stage names,
  days and counts only, never a row's content.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

PROGRESS_DIR_ENV = "FEEDBACK_PROGRESS_DIR"
SNAPSHOT_SECONDS = 0.5


@dataclass
class StageProgress:
    """The running figures of one step: the output being written, rows written to it, rows read
    of a streamed input, and the time since the step began.

    Each output gets its own snapshot (`begin_output` ... `finish_output`), named by its asset,
    so a step with two outputs (traces and their quarantine) reports both; until its first
    output begins, a step that reads a streamed input reports under its step key."""

    step: str
    day: str | None = None
    started: float = field(default_factory=time.monotonic)
    label: str = ""
    rows: int = 0
    read: int = 0
    read_total: int | None = None
    done: bool = False
    _written_at: float = 0.0
    _file: Path | None = None

    def __post_init__(self) -> None:
        self.label = self.label or self.step
        self._file = self._file_for(self.label)

    def _file_for(self, label: str) -> Path | None:
        folder = os.environ.get(PROGRESS_DIR_ENV)
        if not folder:
            return None
        return Path(folder) / f"{label}.{self.day or 'all'}.{uuid.uuid4().hex[:8]}.json"

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def begin_output(self, asset: str) -> None:
        """An output starts writing: its rows count from zero under its asset's name (the
        step-level snapshot, if any, is removed: its figures continue in this one)."""
        if self._file is not None and self.label == self.step and self.rows == 0:
            self._file.unlink(missing_ok=True)
        self.label, self.rows, self.done = asset, 0, False
        self._file = self._file_for(asset)
        self.snapshot(force=True)

    def wrote(self, rows: int) -> None:
        self.rows += rows
        self.snapshot()

    def reading(self, total: int) -> None:
        """A pass over a streamed input of `total` rows begins (a stage may read one twice)."""
        self.read, self.read_total = 0, total
        self.snapshot()

    def was_read(self, rows: int) -> None:
        self.read += rows
        self.snapshot()

    def metadata(self, rows: int | None = None) -> dict[str, float]:
        """The figures for an output's metadata: rows per second of the step's time so far."""
        elapsed = self.elapsed
        count = self.rows if rows is None else rows
        return {"elapsed_seconds": round(elapsed, 3),
                "rows_per_second": round(count / elapsed, 1) if elapsed > 0 else 0.0}

    def finish_output(self, rows: int | None = None) -> None:
        if rows is not None:
            self.rows = rows
        self.done = True
        self.snapshot(force=True)

    def snapshot(self, force: bool = False) -> None:
        if self._file is None:
            return
        now = time.monotonic()
        if not force and now - self._written_at < SNAPSHOT_SECONDS:
            return
        self._written_at = now
        state = {"step": self.label, "day": self.day, "rows": self.rows, "read": self.read,
                 "read_total": self.read_total, "elapsed": round(self.elapsed, 3),
                 "done": self.done}
        tmp = self._file.with_name(f".{self._file.name}.tmp")
        try:
            tmp.write_text(json.dumps(state), encoding="utf-8")
            os.replace(tmp, self._file)
        except OSError:  # a convenience: a full or vanished folder never fails a step
            tmp.unlink(missing_ok=True)


_current: dict[tuple[str, str], StageProgress] = {}
_lock = threading.Lock()


def progress_of(run_id: str, step: str, day: str | None) -> StageProgress:
    """The step's progress, started the first time the IO manager meets the step (its first
    input loaded, or its first output when it has no inputs). Only the current run's steps are
    kept: a process that runs one job after another (the CLI over a window of days) would
    otherwise hold every step it ever ran."""
    with _lock:
        key = (run_id, step)
        progress = _current.get(key)
        if progress is None:
            for old in [k for k in _current if k[0] != run_id]:
                del _current[old]
            progress = _current[key] = StageProgress(step, day)
        return progress


def summary_line(state: dict[str, Any]) -> str:
    """One finished stage: `raw_traces 2026-05-01: 10,000 rows in 3.2 s (3,125 rows/s)`."""
    elapsed = float(state.get("elapsed") or 0.0)
    rows = int(state.get("rows") or 0)
    rate = rows / elapsed if elapsed > 0 else 0.0
    where = f" {state['day']}" if state.get("day") else ""
    return f"{state['step']}{where}: {rows:,} rows in {elapsed:.1f} s ({rate:,.0f} rows/s)"


@contextlib.contextmanager
def displayed(enabled: bool = True, stream: IO[str] | None = None) -> Iterator[None]:
    """While the block runs, every step reports into a temporary progress folder and a
    ProgressDisplay draws it; disabled, nothing is set and nothing is printed."""
    if not enabled:
        yield
        return
    previous = os.environ.get(PROGRESS_DIR_ENV)
    with tempfile.TemporaryDirectory(prefix="feedback-progress-") as folder:
        os.environ[PROGRESS_DIR_ENV] = folder
        try:
            with ProgressDisplay(Path(folder), stream):
                yield
        finally:
            if previous is None:
                os.environ.pop(PROGRESS_DIR_ENV, None)
            else:
                os.environ[PROGRESS_DIR_ENV] = previous


class ProgressDisplay:
    """Draws the snapshots of a progress folder while a run works: a tqdm bar per running stage
    (rows done, rows/s, elapsed; a bar with a total while a streamed input is read), and one
    summary line per finished stage. On a stream that is not a terminal only the summary lines
    are printed, so a CI log reads as a table of stages."""

    def __init__(self, folder: Path, stream: IO[str] | None = None,
                 interval: float = 0.25) -> None:
        self.folder = folder
        self.stream = stream or sys.stderr
        self.interval = interval
        self.terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        self._bars: dict[str, Any] = {}
        self._finished: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)

    def __enter__(self) -> ProgressDisplay:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.poll()  # the last snapshots, so every finished stage gets its line
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def poll(self) -> None:
        paths = []
        for path in self.folder.glob("*.json"):
            with contextlib.suppress(OSError):
                paths.append((path.stat().st_mtime_ns, path))
        paths = [path for _, path in sorted(paths)]  # stages in the order they reported
        for gone in set(self._bars) - {p.name for p in paths}:
            self._bars.pop(gone).close()  # a step-level snapshot its first output replaced
        for path in paths:
            name = path.name
            if name in self._finished:
                continue
            try:
                state = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # replaced between listing and reading; the next poll sees it
            if state.get("done"):
                self._finished.add(name)
                bar = self._bars.pop(name, None)
                if bar is not None:
                    bar.close()
                self._write(summary_line(state))
            elif self.terminal:
                self._draw(name, state)

    def _write(self, line: str) -> None:
        if self.terminal:
            from tqdm import tqdm

            tqdm.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def _draw(self, name: str, state: dict[str, Any]) -> None:
        from tqdm import tqdm

        bar = self._bars.get(name)
        label = f"{state['step']} {state.get('day') or ''}".strip()
        if bar is None:
            bar = self._bars[name] = tqdm(desc=label, unit=" rows",
                                          file=self.stream, leave=False, dynamic_ncols=True)
        total = state.get("read_total")
        if total:  # reading a streamed input: a bar over its rows, with the rows written so far
            bar.total, bar.unit = total, " rows read"
            bar.n = min(int(state.get("read") or 0), total)
            bar.set_postfix_str(f"{int(state.get('rows') or 0):,} written", refresh=False)
        else:
            bar.n = int(state.get("rows") or 0)
        bar.refresh()
