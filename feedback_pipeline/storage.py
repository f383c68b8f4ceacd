"""The data root: every path, read and write of the pipeline goes through here.

One class owns the layout of contract section 1 so that stages never build paths by hand, every
write is atomic (temporary name + rename), and the restricted zone is owner-only. Plain Python:
the Dagster resources and the CLI both wrap it.

The root is a local folder or an fsspec URL (`s3://bucket/prefix`, `gcs://...`, `memory://x`).
A local root keeps the plain `pathlib` code; a URL root hands out `FsPath` objects with the same
slice of the pathlib API, backed by the fsspec filesystem. On object stores, Parquet partitions
and streamed exports are written under a temporary key and then moved onto the final key (a
server-side copy: the final object appears whole or not at all); small files (JSON, bytes) are
one put, which object stores apply atomically per object. Object stores have no permission bits:
protect the `restricted/` prefix with the store's own access policy.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
import shutil
import stat
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path, PurePosixPath
from types import SimpleNamespace
from typing import Any

import duckdb
import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

WAREHOUSE = "warehouse"
RESTRICTED = "restricted"
ZONES = (WAREHOUSE, RESTRICTED)
LANDING_KINDS = ("traces", "reviews", "judge")
DEFAULT_DATA_ROOT = "data"


_DAY_NAME = re.compile(r"\d{4}-\d{2}-\d{2}")


def is_day_name(name: str) -> bool:
    """Whether a folder name is a calendar day written YYYY-MM-DD."""
    if not _DAY_NAME.fullmatch(name):
        return False
    try:
        datetime.strptime(name, "%Y-%m-%d")
    except ValueError:
        return False
    return True


def default_data_root() -> str:
    """FEEDBACK_DATA_ROOT, else ./data (contract section 1)."""
    return os.environ.get("FEEDBACK_DATA_ROOT", DEFAULT_DATA_ROOT)


def is_url(root: str | os.PathLike[str]) -> bool:
    """True for an fsspec URL such as s3://bucket/prefix (a Windows drive letter is not one)."""
    text = os.fspath(root) if isinstance(root, os.PathLike) else str(root)
    scheme, sep, _ = text.partition("://")
    return bool(sep) and len(scheme) > 1 and scheme.replace("+", "").replace("-", "").isalnum()


class FsPath:
    """A path inside an fsspec filesystem, with the part of pathlib's API the pipeline uses.

    `str()` gives the full URL, so messages, DuckDB scans and child processes see where the
    data lives. There is deliberately no `__fspath__`: nothing may open it as a local file.
    """

    def __init__(self, fs: fsspec.AbstractFileSystem, path: str) -> None:
        self.fs = fs
        self.path = path.rstrip("/") or "/"

    # ---- pure path operations -------------------------------------------------------------
    def __truediv__(self, other: str | os.PathLike[str]) -> FsPath:
        return FsPath(self.fs, posixpath.join(self.path, os.fspath(other)))

    def joinpath(self, *parts: str) -> FsPath:
        return FsPath(self.fs, posixpath.join(self.path, *parts))

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    @property
    def stem(self) -> str:
        return PurePosixPath(self.name).stem

    @property
    def parent(self) -> FsPath:
        return FsPath(self.fs, posixpath.dirname(self.path))

    def with_name(self, name: str) -> FsPath:
        return self.parent / name

    def resolve(self) -> FsPath:
        return self

    def is_relative_to(self, other: FsPath) -> bool:
        return self.path == other.path or self.path.startswith(other.path.rstrip("/") + "/")

    def relative_to(self, other: FsPath) -> PurePosixPath:
        if not self.is_relative_to(other):
            raise ValueError(f"{self} is not under {other}")
        return PurePosixPath(posixpath.relpath(self.path, other.path))

    def __str__(self) -> str:
        return self.fs.unstrip_protocol(self.path)

    def __repr__(self) -> str:
        return f"FsPath({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FsPath) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def __lt__(self, other: FsPath) -> bool:
        return self.path < other.path

    # ---- filesystem operations ------------------------------------------------------------
    def exists(self) -> bool:
        return self.fs.exists(self.path)

    def is_dir(self) -> bool:
        return self.fs.isdir(self.path)

    def is_file(self) -> bool:
        return self.fs.isfile(self.path)

    def iterdir(self) -> Iterator[FsPath]:
        for child in self.fs.ls(self.path, detail=False):
            child = child.rstrip("/")
            if child != self.path:
                yield FsPath(self.fs, child)

    def glob(self, pattern: str) -> Iterator[FsPath]:
        for found in self.fs.glob(posixpath.join(self.path, pattern)):
            yield FsPath(self.fs, found)

    def stat(self) -> SimpleNamespace:
        """Size and modification time (ns; 0 where the store does not say)."""
        info = self.fs.info(self.path)
        try:
            modified = self.fs.modified(self.path)
            mtime_ns = int(modified.timestamp() * 1e9) if isinstance(modified, datetime) else 0
        except (NotImplementedError, OSError, ValueError):
            mtime_ns = 0
        return SimpleNamespace(st_size=int(info.get("size") or 0), st_mtime_ns=mtime_ns,
                               st_mtime=mtime_ns / 1e9)

    def open(self, mode: str = "r", **kwargs: Any) -> Any:
        if "b" not in mode:
            kwargs.setdefault("encoding", "utf-8")
        return self.fs.open(self.path, mode, **kwargs)

    def read_bytes(self) -> bytes:
        return self.fs.cat_file(self.path)

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, payload: bytes) -> int:
        """One put: atomic per object on object stores."""
        self.fs.pipe_file(self.path, payload)
        return len(payload)

    def write_text(self, text: str, encoding: str = "utf-8") -> int:
        return self.write_bytes(text.encode(encoding))

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        self.fs.makedirs(self.path, exist_ok=exist_ok)

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self.fs.rm_file(self.path)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def rmtree(self) -> None:
        self.fs.rm(self.path, recursive=True)


AnyPath = Path | FsPath


def arrow_target(path: AnyPath) -> tuple[str | Path, Any]:
    """(source, pyarrow filesystem) for pyarrow's readers and writers; None means local."""
    if isinstance(path, FsPath):
        from pyarrow.fs import FSSpecHandler, PyFileSystem

        return path.path, PyFileSystem(FSSpecHandler(path.fs))
    return path, None


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

    def counted(self, rows_written: Callable[[int], None]) -> BatchStream:
        """The same stream, calling `rows_written` with each batch's rows as it passes."""
        def batches() -> Iterator[pa.RecordBatch]:
            for batch in self:
                yield batch
                rows_written(batch.num_rows)

        return BatchStream(self.schema, batches())

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

    def __init__(self, path: AnyPath) -> None:
        self.path = path
        self._pass_begins: Callable[[int], None] | None = None
        self._rows_read: Callable[[int], None] | None = None

    def on_read(self, pass_begins: Callable[[int], None],
                rows_read: Callable[[int], None]) -> None:
        """Report each batched pass: its total rows when it begins, each batch's rows as read
        (the IO manager feeds a step's progress display this way)."""
        self._pass_begins, self._rows_read = pass_begins, rows_read

    def _file(self) -> pq.ParquetFile:
        source, filesystem = arrow_target(self.path)
        return pq.ParquetFile(source, filesystem=filesystem)

    @property
    def num_rows(self) -> int:
        return self._file().metadata.num_rows

    @property
    def schema(self) -> pa.Schema:
        return self._file().schema_arrow

    def iter_batches(self, batch_size: int = 50_000,
                     columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
        file = self._file()
        if self._pass_begins is None or self._rows_read is None:
            yield from file.iter_batches(batch_size=batch_size, columns=columns)
            return
        self._pass_begins(file.metadata.num_rows)
        for batch in file.iter_batches(batch_size=batch_size, columns=columns):
            self._rows_read(batch.num_rows)
            yield batch

    def iter_range(self, start: int, stop: int, batch_size: int,
                   columns: list[str] | None = None) -> Iterator[pa.Table]:
        """Rows `start` to `stop` in tables of `batch_size` rows (the last may be shorter),
        reading only the row groups that hold them. With `start` a multiple of `batch_size`,
        these are exactly the batches `iter_batches(batch_size)` gives for those rows, so a
        shard of a day redacts the batches an unsharded pass would."""
        file = self._file()
        offsets = [0]
        for group in range(file.metadata.num_row_groups):
            offsets.append(offsets[-1] + file.metadata.row_group(group).num_rows)
        stop = min(stop, offsets[-1])
        groups = [g for g in range(len(offsets) - 1) if offsets[g] < stop and offsets[g + 1] > start]
        if start >= stop or not groups:
            return

        def rows() -> Iterator[pa.RecordBatch]:
            skip, left = start - offsets[groups[0]], stop - start
            for batch in file.iter_batches(batch_size=batch_size, row_groups=groups,
                                           columns=columns):
                if skip >= batch.num_rows:
                    skip -= batch.num_rows
                    continue
                batch, skip = batch.slice(skip, left), 0
                left -= batch.num_rows
                yield batch
                if not left:
                    return

        full, rest = divmod(stop - start, batch_size)
        schema = file.schema_arrow if columns is None else pa.schema(
            [file.schema_arrow.field(c) for c in columns])
        yield from exact_chunks(rows(), [batch_size] * full + ([rest] if rest else []), schema)

    def iter_frames(self, batch_size: int = 50_000,
                    columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        for batch in self.iter_batches(batch_size, columns):
            yield batch.to_pandas()

    def to_arrow(self, columns: list[str] | None = None) -> pa.Table:
        source, filesystem = arrow_target(self.path)
        return pq.read_table(source, columns=columns, filesystem=filesystem)

    def to_pandas(self, columns: list[str] | None = None) -> pd.DataFrame:
        return self.to_arrow(columns).to_pandas()

    def rows_where_in(self, column: str, values: Iterable[Any],
                      columns: list[str] | None = None) -> pd.DataFrame:
        """Only the rows whose `column` is in `values`, filtered batch by batch."""
        wanted = pa.array(sorted(set(values)), type=self.schema.field(column).type)
        parts = [batch.filter(pc.is_in(batch.column(column), value_set=wanted))
                 for batch in self.iter_batches(columns=columns)]
        if not parts:
            return self.to_pandas(columns).iloc[0:0]
        return pa.Table.from_batches(parts).to_pandas()


class Spool:
    """A temporary file collecting a side output while the main output streams.

    Arrow IPC with LZ4, not Parquet: the rows are encoded once, into the partition they end in,
    and a spool write costs about a memory copy (Parquet with zstd cost the review stage 12 s
    of its main thread at 10^6 traces)."""

    STREAM_ROWS = 50_000  # rows per batch read back: the partition's row groups stay this size
    STALE_SECONDS = 24 * 3600
    """A spool file this old was left by a run that died (no step runs a day): the next spool in
    its folder removes it, so a crash does not keep a day's rows (raw ones, in the restricted
    zone) past their retention."""

    def __init__(self, folder: Path, schema: pa.Schema) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        _remove_stale_spools(folder, self.STALE_SECONDS)
        self.path = folder / f".spool-{uuid.uuid4().hex}.arrows"
        self.schema = schema
        self._writer = pa.ipc.new_stream(
            str(self.path), schema, options=pa.ipc.IpcWriteOptions(compression="lz4"))

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
                with pa.OSFile(str(self.path)) as source:
                    yield from _rebatched(pa.ipc.open_stream(source), self.STREAM_ROWS)
            finally:
                self.path.unlink(missing_ok=True)

        return BatchStream(self.schema, batches())


class StagedTable:
    """Rows one step hands to a later step of the same run, which may run in another process
    or on another machine (a shard of a day parsed by one executor step and merged by
    another): a Parquet file under the zone's `.stage/` folder of the data root, so every
    worker that sees the root sees it. Written by one writer, read by `read_staged` and
    removed by `remove_staged` once the merge's outputs are written; one left by a run that
    died is removed by the next stage in its folder after `Spool.STALE_SECONDS`, as spools
    are."""

    def __init__(self, storage: Storage, zone: str, schema: pa.Schema, label: str) -> None:
        self.relative_path = f"{zone}/.stage/{label}-{uuid.uuid4().hex}.parquet"
        folder = storage.root / zone / ".stage"
        storage._ensure_dir(folder)
        if not storage.remote:
            _remove_stale_stages(folder, Spool.STALE_SECONDS)
        self.path = storage.root / self.relative_path
        self.schema = schema
        self.rows = 0
        where, filesystem = arrow_target(self.path)
        self._writer = pq.ParquetWriter(where, schema, filesystem=filesystem,
                                        compression="lz4")
        if isinstance(self.path, Path) and storage._is_restricted(self.path):
            restrict(self.path)

    def write(self, data: pa.Table | pd.DataFrame) -> None:
        if isinstance(data, pd.DataFrame):
            data = pa.Table.from_pandas(data, schema=self.schema, preserve_index=False)
        if data.num_rows:
            self._writer.write_table(data.cast(self.schema))
            self.rows += data.num_rows

    def close(self) -> str:
        """The file's path under the data root, to hand to the reading step."""
        self._writer.close()
        return self.relative_path


def read_staged(storage: Storage, path: str, sizes: list[int],
                schema: pa.Schema) -> Iterator[pa.Table]:
    """A `StagedTable`'s rows (`path` as its `close` gave it) cut into consecutive tables of
    exactly `sizes` rows (the tables its writer wrote, empty ones included). The file stays
    until `remove_staged`: a merge that fails part way can be retried on the same files."""
    if not any(sizes):
        yield from (schema.empty_table() for _ in sizes)
        return
    source, filesystem = arrow_target(storage.root / path)
    file = pq.ParquetFile(source, filesystem=filesystem)
    yield from exact_chunks(file.iter_batches(batch_size=50_000), sizes, schema)


def remove_staged(storage: Storage, paths: Iterable[str]) -> None:
    """Remove staged tables once what was made from them is written."""
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            (storage.root / path).unlink()


def exact_chunks(stream: Iterable[pa.RecordBatch], sizes: list[int],
                 schema: pa.Schema) -> Iterator[pa.Table]:
    """The rows of `stream` cut into consecutive tables of exactly `sizes` rows."""
    iterator = iter(stream)
    held: pa.Table | None = None
    for size in sizes:
        parts: list[pa.Table] = []
        need = size
        while need:
            if held is None or not held.num_rows:
                held = pa.Table.from_batches([next(iterator)])
            take = min(need, held.num_rows)
            parts.append(held.slice(0, take))
            held = held.slice(take)
            need -= take
        yield pa.concat_tables(parts) if parts else schema.empty_table()
    for _rest in iterator:  # read to the end: a spool removes its file then
        pass


def _remove_stale_stages(folder: Path, older_than: float) -> None:
    cutoff = time.time() - older_than
    for path in folder.glob("*.parquet"):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                path.unlink()


def _remove_stale_spools(folder: Path, older_than: float) -> None:
    cutoff = time.time() - older_than
    for path in folder.glob(".spool-*.arrows"):
        with contextlib.suppress(FileNotFoundError):  # another step may remove it first
            if path.stat().st_mtime < cutoff:
                path.unlink()


def _rebatched(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Small batches joined into batches of about `rows` (a copy of one batch's worth)."""
    held: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        held.append(batch)
        count += batch.num_rows
        if count >= rows:
            yield pa.concat_batches(held)
            held, count = [], 0
    if held:
        yield pa.concat_batches(held)


class Storage:
    """Paths and atomic IO under one data root: a local folder or an fsspec URL."""

    root: AnyPath

    def __init__(self, root: str | os.PathLike[str] | FsPath) -> None:
        if isinstance(root, FsPath):
            self.fs: fsspec.AbstractFileSystem | None = root.fs
            self.root = root
        elif is_url(root):
            fs, base = fsspec.core.url_to_fs(str(root))
            self.fs = fs
            self.root = FsPath(fs, base)
        else:
            self.fs = None
            self.root = Path(root).resolve()

    @property
    def remote(self) -> bool:
        """True when the root is an fsspec URL rather than a local folder."""
        return self.fs is not None

    def path(self, *parts: str) -> AnyPath:
        """A path under the root (for the few files the layout methods do not name)."""
        return self.root.joinpath(*parts)

    # ---- layout -------------------------------------------------------------------------
    def landing_dir(self, kind: str, day: str | None = None) -> AnyPath:
        if kind not in LANDING_KINDS:
            raise ValueError(f"unknown landing kind {kind!r}; expected one of {LANDING_KINDS}")
        base = self.root / "landing" / kind
        return base / day if day else base

    def landing_days(self, kind: str = "traces") -> list[str]:
        """Days (folders named as a real YYYY-MM-DD day) that hold landed files of this kind,
        sorted. Anything else there is a stray (`landing_strays`), never a partition key."""
        base = self.landing_dir(kind)
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir()
                      if is_day_name(p.name) and p.is_dir() and any(p.iterdir()))

    def landing_strays(self, kind: str = "traces") -> int:
        """How many entries of `landing/<kind>/` are not day folders (a file, `not-a-day/`,
        `2024-13-40/`): nothing reads them, so the run's summary says they are there."""
        base = self.landing_dir(kind)
        if not base.is_dir():
            return 0
        return sum(1 for p in base.iterdir() if not (is_day_name(p.name) and p.is_dir()))

    def window_days(self, start: str | None, end: str | None) -> list[str]:
        """The landed trace days from `start` to `end` (inclusive; None is open)."""
        return [d for d in self.landing_days("traces")
                if (start is None or d >= start) and (end is None or d <= end)]

    def prompt_fingerprints(self, trace_ids: list[str], with_prompts: bool = True
                            ) -> pd.DataFrame:
        """The given trace ids with their prompt fingerprint and (`with_prompts`) redacted
        prompt wherever the trace landed (None where it has not): the frozen-set lookups of
        routing (fingerprints only, so no prompt text is read), selection, the release's
        leakage gate and `verify`."""
        wanted = pd.DataFrame({"trace_id": pd.Series(trace_ids, dtype=object)})
        columns = ["prompt_fingerprint", *(["prompt"] if with_prompts else [])]
        scan = self.scan_sql(WAREHOUSE, "redacted_traces")
        if scan is None:
            return wanted.assign(**dict.fromkeys(columns))
        picked = ", ".join(f"t.{c}" for c in columns)
        with self.connect() as con:
            con.register("wanted_ids", wanted)
            return con.execute(
                f"SELECT w.trace_id, {picked} FROM wanted_ids w LEFT JOIN (SELECT trace_id, "
                f"{', '.join(columns)} FROM {scan}) t USING (trace_id)").df()

    def landing_files(self, kind: str, day: str, suffixes: tuple[str, ...]) -> list[AnyPath]:
        folder = self.landing_dir(kind, day)
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(suffixes))

    def config_path(self, *parts: str) -> AnyPath:
        return self.root.joinpath("config", *parts)

    def relative(self, path: AnyPath) -> str:
        try:
            return str(path.resolve().relative_to(self.root))
        except ValueError:
            return str(path)

    def table_dir(self, zone: str, table: str) -> AnyPath:
        if zone not in ZONES:
            raise ValueError(f"unknown zone {zone!r}")
        return self.root / zone / table

    def partition_dir(self, zone: str, table: str, day: str | None) -> AnyPath:
        base = self.table_dir(zone, table)
        return base / f"date={day}" if day else base / "all"

    @property
    def releases_dir(self) -> AnyPath:
        return self.root / "releases"

    @property
    def exports_dir(self) -> AnyPath:
        return self.root / "exports"

    @property
    def audit_log(self) -> AnyPath:
        return self.root / RESTRICTED / "audit" / "vault_access.jsonl"

    # ---- writes ---------------------------------------------------------------------------
    def _ensure_dir(self, path: AnyPath) -> None:
        path.mkdir(parents=True, exist_ok=True)
        if self.remote:
            return
        if self._is_restricted(path):
            current = path
            while current != self.root and current.is_relative_to(self.root):
                restrict(current)
                current = current.parent

    def _is_restricted(self, path: AnyPath) -> bool:
        return not self.remote and path.resolve().is_relative_to(self.root / RESTRICTED)

    def _move(self, tmp: AnyPath, final: AnyPath) -> None:
        """Rename locally; on a store, a server-side move that makes `final` appear whole."""
        if isinstance(tmp, FsPath):
            try:
                tmp.fs.mv(tmp.path, final.path)
            finally:
                tmp.unlink(missing_ok=True)
        else:
            os.replace(tmp, final)

    def write_table(self, zone: str, table: str, day: str | None, data: pa.Table) -> AnyPath:
        """Replace one partition atomically: a re-run of a day replaces it cleanly."""
        def write(source: str | Path, filesystem: Any) -> None:
            pq.write_table(data, source, compression="zstd", filesystem=filesystem)

        return self._write_partition(zone, table, day, write)

    def write_stream(self, zone: str, table: str, day: str | None,
                     stream: BatchStream) -> tuple[AnyPath, int]:
        """Write a stream of batches as one partition, atomically; (path, rows written)."""
        rows = 0

        def write(source: str | Path, filesystem: Any) -> None:
            nonlocal rows
            with pq.ParquetWriter(source, stream.schema, compression="zstd",
                                  filesystem=filesystem) as writer:
                for batch in stream:
                    writer.write_batch(batch)
                    rows += batch.num_rows

        return self._write_partition(zone, table, day, write), rows

    def _write_partition(self, zone: str, table: str, day: str | None,
                         write: Callable[[str | Path, Any], None]) -> AnyPath:
        """Write to a temporary file beside the partition, then rename it into place (owner-only
        in the restricted zone) and drop any other Parquet file left in the folder."""
        folder = self.partition_dir(zone, table, day)
        self._ensure_dir(folder)
        final = folder / "part-0.parquet"
        tmp = folder / f".part-0.{uuid.uuid4().hex}.tmp"
        source, filesystem = arrow_target(tmp)
        try:
            write(source, filesystem)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if self._is_restricted(tmp):
            restrict(tmp)
        self._move(tmp, final)
        for stale in folder.iterdir():
            if stale != final and stale.suffix == ".parquet":
                stale.unlink()
        return final

    def spool(self, zone: str, schema: pa.Schema) -> Spool:
        """Scratch space for a side output; a local temporary folder when the root is a URL."""
        if self.remote:
            return Spool(Path(tempfile.gettempdir()) / "feedback-pipeline-spool", schema)
        folder = self.root / zone / ".spool"
        self._ensure_dir(folder)
        return Spool(folder, schema)

    def write_bytes(self, path: AnyPath, payload: bytes) -> AnyPath:
        """Replace `path` whole: temporary file + rename locally, one put on an object store."""
        if isinstance(path, FsPath):
            self._ensure_dir(path.parent)
            path.write_bytes(payload)
            return path
        with self.staged_path(path) as tmp:
            tmp.write_bytes(payload)
        return path

    def write_text(self, path: AnyPath, text: str) -> AnyPath:
        return self.write_bytes(path, text.encode("utf-8"))

    @contextlib.contextmanager
    def staged_path(self, path: AnyPath) -> Iterator[Path]:
        """A local path for a writer that needs one (DuckDB's COPY); what it holds appears at
        `path` whole when the block completes: renamed into place locally, one upload on an
        object store."""
        self._ensure_dir(path.parent)
        if isinstance(path, FsPath):
            with tempfile.TemporaryDirectory(prefix="staged-") as scratch:
                local = Path(scratch) / path.name
                yield local
                path.fs.put_file(str(local), path.path)
            return
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            yield tmp
            if self._is_restricted(tmp):
                restrict(tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def write_json(self, path: AnyPath, obj: Any) -> AnyPath:
        return self.write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")

    def append_line(self, path: AnyPath, line: str) -> None:
        """Append one line; object stores cannot append, so there the object is rewritten
        (one writer at a time, fine for alert logs)."""
        self._ensure_dir(path.parent)
        if isinstance(path, FsPath):
            old = path.read_bytes() if path.exists() else b""
            path.write_bytes(old + (line.rstrip("\n") + "\n").encode("utf-8"))
            return
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(line.rstrip("\n") + "\n")
        if self._is_restricted(path):
            restrict(path)

    def delete_partition(self, zone: str, table: str, day: str) -> bool:
        folder = self.partition_dir(zone, table, day)
        return self.remove_tree(folder)

    def delete_landing(self, kind: str, day: str) -> bool:
        """Remove one landed day of `kind` (retention); False when there was none."""
        return self.remove_tree(self.landing_dir(kind, day))

    def remove_tree(self, folder: AnyPath) -> bool:
        if not folder.exists():
            return False
        if isinstance(folder, FsPath):
            folder.rmtree()
        else:
            shutil.rmtree(folder)
        return True

    # ---- reads ----------------------------------------------------------------------------
    def partition_path(self, zone: str, table: str, day: str | None) -> AnyPath:
        return self.partition_dir(zone, table, day) / "part-0.parquet"

    def has_table(self, zone: str, table: str, day: str | None = None) -> bool:
        if day is not None or (self.partition_dir(zone, table, None)).exists():
            return self.partition_path(zone, table, day).exists()
        return bool(self.table_days(zone, table))

    def read_table(self, zone: str, table: str, day: str | None,
                   columns: list[str] | None = None) -> pa.Table:
        path = self.partition_path(zone, table, day)
        if not path.exists():
            raise FileNotFoundError(f"{zone}/{table} has no partition {day or 'all'} under {self.root}")
        return self.read_parquet(path, columns=columns)

    def read_parquet(self, path: AnyPath, columns: list[str] | None = None) -> pa.Table:
        """Any Parquet file under the root (a partition, a release file)."""
        source, filesystem = arrow_target(path)
        return pq.read_table(source, columns=columns, filesystem=filesystem)

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

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection that can read scan_sql() fragments (the fsspec filesystem is
        registered on it when the root is a URL)."""
        con = duckdb.connect()
        if self.fs is not None:
            con.register_filesystem(self.fs)
        return con

    def query(self, sql: str, **tables: str | None) -> pa.Table:
        """Run DuckDB SQL where {name} placeholders are filled by scan_sql() fragments."""
        with self.connect() as con:
            return con.sql(sql.format(**tables)).to_arrow_table()

    # ---- releases -------------------------------------------------------------------------
    def list_versions(self) -> list[str]:
        from feedback_pipeline.core.release import list_versions

        return list_versions(self.releases_dir)

    def release_dir(self, version: str) -> AnyPath:
        return self.releases_dir / version

    def write_release(self, version: str, files: dict[str, bytes],
                      manifest: dict[str, Any], sign: Any = None) -> AnyPath:
        """releases/<version>, immutable (see core.release.write_release for the atomicity),
        signed when `sign` is given (core.signing)."""
        from feedback_pipeline.core.release import write_release

        return write_release(self.releases_dir, version, files, manifest, sign)
