"""The floors the pipeline's stages are measured against, on this machine, for one generated day.

    python bench/floors.py [--size 100000] [--write-mb 512]

- ingest: DuckDB's `read_json` over the day's landed trace files (every core; the vectorised
  reader a stage could at best match), beside per-line `json.loads` on one core (parsing alone,
  no validation);
- redaction: one Hyperscan pass of the redactor's locator database over the day's texts (one
  core): no redactor that runs that pass can be faster; beside `Redactor.redact_texts` on the
  same texts (the engine's own speed, tokens and propagation included);
- exports: sequential write speed of the disk the data root is on (8 MiB blocks, fsynced).

Print figures next to `bench/pipeline.py`'s per-stage MB/s (same `--size`, same generator seed)
to read each stage as a ratio to its floor.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, table  # noqa: E402


def _day(root: Path, size: int) -> list[Path]:
    from feedback_pipeline.synth.generator import generate

    generate(root, days=1, traces_per_day=size, seed=5, start=date(2026, 5, 1))
    return sorted(p for p in (root / "landing" / "traces").rglob("*.jsonl*") if p.is_file())


def _duckdb_read_json(files: list[Path]) -> float:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {os.cpu_count() or 1}")
    sources = [str(p) for p in files]
    start = time.perf_counter()
    # ignore_errors: the generated day holds malformed lines on purpose (ingest quarantines them)
    con.execute("CREATE TABLE t AS SELECT * FROM read_json(?, format='newline_delimited', "
                "maximum_object_size=67108864, union_by_name=true, ignore_errors=true)",
                [sources]).fetchall()
    return time.perf_counter() - start


def _lines(files: list[Path]) -> list[bytes]:
    import gzip

    out: list[bytes] = []
    for path in files:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            out += [line for line in handle if line.strip()]
    return out


def _json_loads(lines: list[bytes]) -> tuple[float, int]:
    """CPU seconds of `json.loads` over every line (malformed ones fail as fast as they can)."""
    start = time.process_time()
    for line in lines:
        with contextlib.suppress(ValueError):
            json.loads(line)
    return time.process_time() - start, sum(len(line) for line in lines)


def _texts(lines: list[bytes]) -> list[str]:
    out: list[str] = []
    for line in lines:
        try:
            trace = json.loads(line)
        except ValueError:
            continue
        if not isinstance(trace, dict):
            continue
        out += [t for t in (trace.get("prompt"), trace.get("context"),
                            trace.get("approved_answer")) if isinstance(t, str)]
        out += [c.get("text") for c in trace.get("candidates") or []
                if isinstance(c, dict) and isinstance(c.get("text"), str)]
    return out


def _redaction_floor(texts: list[str]) -> tuple[float, float, int]:
    from feedback_pipeline.core.redaction import Redactor
    from feedback_pipeline.core.redaction.engine import _batches, _Joined
    from feedback_pipeline.synth.secrets_corpus import DENY_TERMS

    redactor = Redactor(DENY_TERMS, corpus_key=b"bench-floor-key-0123456789abcdef")
    locator = redactor._locator
    if locator is None:
        raise SystemExit("hyperscan is not installed: there is no engine floor to measure")
    buffers = [_Joined(texts[lo:hi]).encoded() for lo, hi in _batches(texts, 8 << 20)]
    n_bytes = sum(len(b) for b in buffers)
    start = time.process_time()
    for buffer in buffers:
        locator.reports(buffer)
    scan = time.process_time() - start
    start = time.process_time()
    redactor.redact_texts(texts)
    return scan, time.process_time() - start, n_bytes


def _disk_write(folder: Path, megabytes: int) -> float:
    block = os.urandom(8 << 20)
    path = folder / "disk-floor.bin"
    start = time.perf_counter()
    with open(path, "wb") as handle:
        for _ in range(max(1, megabytes // 8)):
            handle.write(block)
        handle.flush()
        os.fsync(handle.fileno())
    seconds = time.perf_counter() - start
    path.unlink()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000, help="traces in the day")
    parser.add_argument("--write-mb", type=int, default=512, help="MB for the disk write")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(dir=os.environ.get("FEEDBACK_BENCH_TMP")) as tmp:
        root = Path(tmp) / "data"
        files = _day(root, args.size)
        landed = sum(p.stat().st_size for p in files)
        duck = _duckdb_read_json(files)
        lines = _lines(files)
        loads, parsed = _json_loads(lines)
        texts = _texts(lines)
        scan, redact, text_bytes = _redaction_floor(texts)
        disk = _disk_write(Path(tmp), args.write_mb)
        rows = [
            ["ingest", "DuckDB read_json, every core", f"{landed / 1e6 / duck:.0f} MB/s",
             f"{landed / 1e6:.0f} MB landed"],
            ["ingest", "json.loads per line, one core", f"{parsed / 1e6 / loads:.0f} MB/s",
             "parsing only"],
            ["redaction", "locator scan (Hyperscan), one core",
             f"{text_bytes / 1e6 / scan:.0f} MB/s", f"{text_bytes / 1e6:.0f} MB of texts"],
            ["redaction", "Redactor.redact_texts, one core",
             f"{text_bytes / 1e6 / redact:.1f} MB/s", "the engine's own speed"],
            ["exports", "sequential disk write, fsynced",
             f"{args.write_mb / disk:.0f} MB/s", f"{args.write_mb} MB in 8 MiB blocks"],
        ]
    print(f"floors for a generated day of {args.size:,} traces")
    print(table(["stage", "floor", "rate", "of"], rows))


if __name__ == "__main__":
    main()
