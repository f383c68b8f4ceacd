"""The data root: every path, read and write of the pipeline goes through here.

One class owns the layout of contract section 1 so that stages never build paths by hand, every
write is atomic (temporary name + rename), and the restricted zone is owner-only. Plain Python:
the Dagster resources and the CLI both wrap it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

WAREHOUSE = "warehouse"
RESTRICTED = "restricted"
ZONES = (WAREHOUSE, RESTRICTED)
LANDING_KINDS = ("traces", "reviews", "judge")
DEFAULT_DATA_ROOT = "data"


def default_data_root() -> str:
    """FEEDBACK_DATA_ROOT, else ./data (contract section 1)."""
    return os.environ.get("FEEDBACK_DATA_ROOT", DEFAULT_DATA_ROOT)


def restrict(path: Path) -> None:
    """Owner-only permissions: 0700 for folders, 0600 for files."""
    mode = stat.S_IRWXU if path.is_dir() else stat.S_IRUSR | stat.S_IWUSR
    os.chmod(path, mode)


class BatchStream:
    """Record batches that become one partition, written as they arrive (never all in memory).

    An asset returns one of these instead of a DataFrame when a day is too large to hold; the IO
    manager writes it batch by batch to a temporary file and renames it into place.
    """

    def __init__(self, schema: pa.Schema,
                 batches: Iterable[pa.RecordBatch | pa.Table | pd.DataFrame]) -> None:
        self.schema = schema
        self._batches = batches

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        for batch in self._batches:
            if isinstance(batch, pd.DataFrame):
                batch = pa.Table.from_pandas(batch, schema=self.schema, preserve_index=False)
            if isinstance(batch, pa.Table):
                yield from batch.cast(self.schema).to_batches()
            elif batch.num_rows:
                yield batch


class PartitionBatches:
    """A stored partition, read lazily in record batches (or whole, when it is small)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def num_rows(self) -> int:
        return pq.ParquetFile(self.path).metadata.num_rows

    @property
    def schema(self) -> pa.Schema:
        return pq.ParquetFile(self.path).schema_arrow

    def iter_batches(self, batch_size: int = 50_000,
                     columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
        yield from pq.ParquetFile(self.path).iter_batches(batch_size=batch_size, columns=columns)

    def iter_frames(self, batch_size: int = 50_000,
                    columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        for batch in self.iter_batches(batch_size, columns):
            yield batch.to_pandas()

    def to_pandas(self, columns: list[str] | None = None) -> pd.DataFrame:
        return pq.read_table(self.path, columns=columns).to_pandas()

    def rows_where_in(self, column: str, values: Iterable[Any],
                      columns: list[str] | None = None) -> pd.DataFrame:
        """Only the rows whose `column` is in `values`, filtered batch by batch."""
        wanted = pa.array(sorted(set(values)), type=self.schema.field(column).type)
        parts = [batch.filter(pc.is_in(batch.column(column), value_set=wanted))
                 for batch in self.iter_batches(columns=columns)]
        if not parts:
            return pq.read_table(self.path, columns=columns).slice(0, 0).to_pandas()
        return pa.Table.from_batches(parts).to_pandas()


class Spool:
    """A temporary Parquet file collecting a side output while the main output streams."""

    def __init__(self, folder: Path, schema: pa.Schema) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f".spool-{uuid.uuid4().hex}.parquet"
        self.schema = schema
        self._writer = pq.ParquetWriter(self.path, schema, compression="zstd")

    def write(self, data: pa.Table | pd.DataFrame) -> None:
        if isinstance(data, pd.DataFrame):
            data = pa.Table.from_pandas(data, schema=self.schema, preserve_index=False)
        if data.num_rows:
            self._writer.write_table(data.cast(self.schema))

    def stream(self) -> BatchStream:
        """The spooled rows as a stream; the spool file is removed once it has been read."""
        self._writer.close()

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                yield from pq.ParquetFile(self.path).iter_batches(batch_size=50_000)
            finally:
                self.path.unlink(missing_ok=True)

        return BatchStream(self.schema, batches())


class Storage:
    """Paths and atomic IO under one data root."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    # ---- layout -------------------------------------------------------------------------
    def landing_dir(self, kind: str, day: str | None = None) -> Path:
        if kind not in LANDING_KINDS:
            raise ValueError(f"unknown landing kind {kind!r}; expected one of {LANDING_KINDS}")
        base = self.root / "landing" / kind
        return base / day if day else base

    def landing_days(self, kind: str = "traces") -> list[str]:
        """Days (folder names) that hold landed files of this kind, sorted."""
        base = self.landing_dir(kind)
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if p.is_dir() and any(p.iterdir()))

    def landing_files(self, kind: str, day: str, suffixes: tuple[str, ...]) -> list[Path]:
        folder = self.landing_dir(kind, day)
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(suffixes))

    def config_path(self, *parts: str) -> Path:
        return self.root.joinpath("config", *parts)

    def relative(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.root))
        except ValueError:
            return str(path)

    def table_dir(self, zone: str, table: str) -> Path:
        if zone not in ZONES:
            raise ValueError(f"unknown zone {zone!r}")
        return self.root / zone / table

    def partition_dir(self, zone: str, table: str, day: str | None) -> Path:
        base = self.table_dir(zone, table)
        return base / f"date={day}" if day else base / "all"

    @property
    def releases_dir(self) -> Path:
        return self.root / "releases"

    @property
    def exports_dir(self) -> Path:
        return self.root / "exports"

    @property
    def audit_log(self) -> Path:
        return self.root / RESTRICTED / "audit" / "vault_access.jsonl"

    # ---- writes ---------------------------------------------------------------------------
    def _ensure_dir(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        if self._is_restricted(path):
            current = path
            while current != self.root and current.is_relative_to(self.root):
                restrict(current)
                current = current.parent

    def _is_restricted(self, path: Path) -> bool:
        return path.resolve().is_relative_to(self.root / RESTRICTED)

    def write_table(self, zone: str, table: str, day: str | None, data: pa.Table) -> Path:
        """Replace one partition atomically: a re-run of a day replaces it cleanly."""
        folder = self.partition_dir(zone, table, day)
        self._ensure_dir(folder)
        final = folder / "part-0.parquet"
        tmp = folder / f".part-0.{uuid.uuid4().hex}.tmp"
        pq.write_table(data, tmp, compression="zstd")
        if self._is_restricted(tmp):
            restrict(tmp)
        os.replace(tmp, final)
        for stale in folder.iterdir():
            if stale != final and stale.suffix == ".parquet":
                stale.unlink()
        return final

    def write_stream(self, zone: str, table: str, day: str | None,
                     stream: BatchStream) -> tuple[Path, int]:
        """Write a stream of batches as one partition, atomically; (path, rows written)."""
        folder = self.partition_dir(zone, table, day)
        self._ensure_dir(folder)
        final = folder / "part-0.parquet"
        tmp = folder / f".part-0.{uuid.uuid4().hex}.tmp"
        rows = 0
        try:
            with pq.ParquetWriter(tmp, stream.schema, compression="zstd") as writer:
                for batch in stream:
                    writer.write_batch(batch)
                    rows += batch.num_rows
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if self._is_restricted(tmp):
            restrict(tmp)
        os.replace(tmp, final)
        return final, rows

    def spool(self, zone: str, schema: pa.Schema) -> Spool:
        folder = self.root / zone / ".spool"
        self._ensure_dir(folder)
        return Spool(folder, schema)

    @contextlib.contextmanager
    def open_atomic(self, path: Path) -> Iterator[Any]:
        """A text handle whose file appears at `path` only when the block completes."""
        self._ensure_dir(path.parent)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as handle:
                yield handle
            if self._is_restricted(tmp):
                restrict(tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def write_bytes(self, path: Path, payload: bytes) -> Path:
        self._ensure_dir(path.parent)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(payload)
        if self._is_restricted(tmp):
            restrict(tmp)
        os.replace(tmp, path)
        return path

    def write_text(self, path: Path, text: str) -> Path:
        return self.write_bytes(path, text.encode("utf-8"))

    def write_json(self, path: Path, obj: Any) -> Path:
        return self.write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")

    def append_line(self, path: Path, line: str) -> None:
        self._ensure_dir(path.parent)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(line.rstrip("\n") + "\n")
        if self._is_restricted(path):
            restrict(path)

    def delete_partition(self, zone: str, table: str, day: str) -> bool:
        folder = self.partition_dir(zone, table, day)
        if not folder.exists():
            return False
        shutil.rmtree(folder)
        return True

    # ---- reads ----------------------------------------------------------------------------
    def partition_path(self, zone: str, table: str, day: str | None) -> Path:
        return self.partition_dir(zone, table, day) / "part-0.parquet"

    def has_table(self, zone: str, table: str, day: str | None = None) -> bool:
        if day is not None or (self.partition_dir(zone, table, None)).exists():
            return self.partition_path(zone, table, day).exists()
        return bool(self.table_days(zone, table))

    def read_table(self, zone: str, table: str, day: str | None) -> pa.Table:
        path = self.partition_path(zone, table, day)
        if not path.exists():
            raise FileNotFoundError(f"{zone}/{table} has no partition {day or 'all'} under {self.root}")
        return pq.read_table(path)

    def batches(self, zone: str, table: str, day: str | None) -> PartitionBatches:
        """One partition, to be streamed in record batches instead of loaded whole."""
        path = self.partition_path(zone, table, day)
        if not path.exists():
            raise FileNotFoundError(f"{zone}/{table} has no partition {day or 'all'} under {self.root}")
        return PartitionBatches(path)

    def table_days(self, zone: str, table: str) -> list[str]:
        base = self.table_dir(zone, table)
        if not base.is_dir():
            return []
        return sorted(
            p.name.removeprefix("date=")
            for p in base.iterdir()
            if p.name.startswith("date=") and (p / "part-0.parquet").exists()
        )

    def scan_sql(self, zone: str, table: str, days: list[str] | None = None) -> str | None:
        """A DuckDB FROM-clause over the table's partitions (optionally some days), or None."""
        available = self.table_days(zone, table)
        chosen = [d for d in available if days is None or d in set(days)]
        if not chosen:
            return None
        files = [str(self.partition_path(zone, table, d)) for d in chosen]
        listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        return f"read_parquet([{listing}], hive_partitioning = true, union_by_name = true)"

    def query(self, sql: str, **tables: str | None) -> pa.Table:
        """Run DuckDB SQL where {name} placeholders are filled by scan_sql() fragments."""
        with duckdb.connect() as con:
            return con.sql(sql.format(**tables)).to_arrow_table()
