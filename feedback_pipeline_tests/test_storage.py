"""Storage on a local folder and on an fsspec URL (memory://): same layout, same results."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import dagster as dg
import fsspec
import pandas as pd
import pyarrow as pa
import pytest

from feedback_pipeline.core.release import ReleaseExistsError, verify_files
from feedback_pipeline.storage import (
    RESTRICTED,
    WAREHOUSE,
    BatchStream,
    FsPath,
    StagedTable,
    Storage,
    is_url,
    read_staged,
    remove_staged,
)

SCHEMA = pa.schema([("trace_id", pa.string()), ("n", pa.int64())])


@pytest.fixture(params=["local", "memory"])
def storage(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "local":
        yield Storage(tmp_path / "data")
        return
    root = f"memory://storage-test-{uuid.uuid4().hex}"
    yield Storage(root)
    fs, path = fsspec.core.url_to_fs(root)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def table(ids: list[str]) -> pa.Table:
    return pa.table({"trace_id": ids, "n": list(range(len(ids)))}, schema=SCHEMA)


def test_url_roots_are_recognised(tmp_path: Path) -> None:
    assert is_url("s3://bucket/prefix") and is_url("memory://x")
    assert not is_url(tmp_path) and not is_url("data") and not is_url("C:/data")
    assert isinstance(Storage("memory://x").root, FsPath)
    assert isinstance(Storage(tmp_path).root, Path)
    assert str(Storage("memory://abc/def").root) == "memory:///abc/def"


def test_write_table_replaces_a_partition_atomically(storage: Storage) -> None:
    storage.write_table(WAREHOUSE, "t", "2026-05-01", table(["a", "b", "c"]))
    final = storage.write_table(WAREHOUSE, "t", "2026-05-01", table(["x"]))
    assert final.name == "part-0.parquet"
    assert storage.read_table(WAREHOUSE, "t", "2026-05-01").column("trace_id").to_pylist() == ["x"]
    names = [p.name for p in storage.partition_dir(WAREHOUSE, "t", "2026-05-01").iterdir()]
    assert names == ["part-0.parquet"]  # no temporary file left behind


def test_write_stream_and_failed_stream_keep_the_old_partition(storage: Storage) -> None:
    path, rows = storage.write_stream(WAREHOUSE, "s", "2026-05-02", BatchStream(
        SCHEMA, [table(["a", "b"]), pd.DataFrame({"trace_id": ["c"], "n": [9]})]))
    assert rows == 3 and path.exists()

    def broken():
        yield table(["z"])
        raise RuntimeError("source went away")

    with pytest.raises(RuntimeError):
        storage.write_stream(WAREHOUSE, "s", "2026-05-02", BatchStream(SCHEMA, broken()))
    batches = storage.batches(WAREHOUSE, "s", "2026-05-02")
    assert batches.num_rows == 3
    assert batches.rows_where_in("trace_id", ["c"])["n"].tolist() == [9]
    assert [p.name for p in path.parent.iterdir()] == ["part-0.parquet"]


def test_scan_sql_and_query_read_chosen_days(storage: Storage) -> None:
    storage.write_table(WAREHOUSE, "q", "2026-05-01", table(["a", "b"]))
    storage.write_table(WAREHOUSE, "q", "2026-05-02", table(["c"]))
    assert storage.table_days(WAREHOUSE, "q") == ["2026-05-01", "2026-05-02"]
    scan = storage.scan_sql(WAREHOUSE, "q")
    got = storage.query("SELECT trace_id, date FROM {t} ORDER BY trace_id", t=scan)
    assert got.column("trace_id").to_pylist() == ["a", "b", "c"]
    assert [str(d) for d in got.column("date").to_pylist()] == ["2026-05-01"] * 2 + ["2026-05-02"]
    one = storage.scan_sql(WAREHOUSE, "q", days=["2026-05-02"])
    assert storage.query("SELECT count(*) AS n FROM {t}", t=one).column("n").to_pylist() == [1]
    assert storage.scan_sql(WAREHOUSE, "q", days=["2026-06-01"]) is None


def test_landing_days_files_and_text(storage: Storage) -> None:
    storage.write_text(storage.landing_dir("traces", "2026-05-03") / "b.jsonl", "{}\n")
    storage.write_text(storage.landing_dir("traces", "2026-05-01") / "a.jsonl", "{}\n")
    storage.write_text(storage.landing_dir("traces", "2026-05-01") / "notes.txt", "x")
    assert storage.landing_days("traces") == ["2026-05-01", "2026-05-03"]
    files = storage.landing_files("traces", "2026-05-01", (".jsonl",))
    assert [p.name for p in files] == ["a.jsonl"]
    assert storage.relative(files[0]) == "landing/traces/2026-05-01/a.jsonl"
    target = storage.exports_dir / "x" / "out.json"
    with storage.staged_path(target) as local:
        local.write_text('{"ok": true}')
        assert not target.exists()  # appears whole, at the end of the block
    assert json.loads(target.read_text()) == {"ok": True}
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]  # no staging file left
    assert storage.delete_landing("traces", "2026-05-03")
    assert storage.landing_days("traces") == ["2026-05-01"]


def test_releases_are_immutable_and_verified(storage: Storage) -> None:
    path = storage.write_release("ds-v1", {"a.parquet": b"one"}, {"dataset_version": "ds-v1"})
    assert storage.list_versions() == ["ds-v1"]
    assert verify_files(path) == []
    with pytest.raises(ReleaseExistsError):
        storage.write_release("ds-v1", {"a.parquet": b"two"}, {"dataset_version": "ds-v1"})
    assert (path / "a.parquet").read_bytes() == b"one"


@pytest.mark.slow
def test_whole_pipeline_on_an_in_memory_object_store(generated_root: Path) -> None:
    """Landing data copied into memory://, run end to end: a release appears there, a re-run
    makes no new version, and nothing is written to the local disk copy."""
    from feedback_pipeline.cli import run_pipeline

    url = f"memory://e2e-{uuid.uuid4().hex}/data"
    fs, base = fsspec.core.url_to_fs(url)
    fs.put(str(generated_root), base, recursive=True)
    try:
        storage = Storage(url)
        assert storage.landing_days("traces")
        outcome = run_pipeline(url, instance=dg.DagsterInstance.ephemeral())
        assert outcome.error is None and outcome.promoted, (outcome.error, outcome.reasons)
        versions = storage.list_versions()
        assert versions == [outcome.dataset_version]
        release = storage.release_dir(versions[0])
        manifest = json.loads((release / "manifest.json").read_text())
        assert set(manifest["files"]) <= {p.name for p in release.iterdir()}
        assert "preference_pairs.parquet" in manifest["files"]
        assert verify_files(release) == []
        assert storage.read_parquet(release / "preference_pairs.parquet").num_rows > 0
        quarantined = sum(storage.read_table("restricted", "trace_quarantine", day).num_rows
                          for day in storage.table_days("restricted", "trace_quarantine"))
        assert quarantined > 0
        assert storage.has_table(WAREHOUSE, "redacted_traces", storage.landing_days()[0])

        again = run_pipeline(url, instance=dg.DagsterInstance.ephemeral())
        assert again.error is None and not again.promoted
        assert storage.list_versions() == versions
    finally:
        fs.rm(base, recursive=True)


def test_a_spool_streams_its_rows_once_and_a_dead_runs_spool_is_removed(tmp_path):
    """A spool left by a run that died a day ago goes when the next spool opens beside it;
    a fresh one (another step's, still writing) stays."""
    storage = Storage(tmp_path)
    schema = pa.schema([("n", pa.int64())])
    first = storage.spool("restricted", schema)
    first.write(pa.table({"n": [1, 2]}))
    stale = first.path.with_name(".spool-dead.arrows")
    stale.write_bytes(b"left by a crash")
    old = time.time() - 2 * 24 * 3600
    os.utime(stale, (old, old))
    fresh = first.path.with_name(".spool-busy.arrows")
    fresh.write_bytes(b"another step")
    second = storage.spool("restricted", schema)
    assert not stale.exists() and fresh.exists() and first.path.exists()
    assert [b.to_pydict() for b in first.stream()] == [{"n": [1, 2]}]
    assert not first.path.exists()
    second.write(pa.table({"n": [3]}))
    assert sum(b.num_rows for b in second.stream()) == 1


def test_a_staged_table_reads_back_in_its_writes_sizes_until_removed(storage: Storage):
    """What one step stages for another: the same tables, empty ones included, readable again
    (a merge retried after a failure), and gone once removed."""
    staged = StagedTable(storage, RESTRICTED, SCHEMA, "shard-0")
    sizes = []
    for rows in (3, 0, 2):
        table = pa.table({"trace_id": [f"t{i}" for i in range(rows)], "n": list(range(rows))},
                         schema=SCHEMA)
        staged.write(table)
        sizes.append(rows)
    staged.write(pd.DataFrame({"trace_id": ["p"], "n": [9]}))
    sizes.append(1)
    path = staged.close()
    assert path.startswith(f"{RESTRICTED}/.stage/shard-0-")
    first = [t.to_pylist() for t in read_staged(storage, path, sizes, SCHEMA)]
    again = [t.to_pylist() for t in read_staged(storage, path, sizes, SCHEMA)]
    assert first == again and [len(t) for t in first] == [3, 0, 2, 1]
    assert first[2] == [{"trace_id": "t0", "n": 0}, {"trace_id": "t1", "n": 1}]
    assert first[3] == [{"trace_id": "p", "n": 9}]
    remove_staged(storage, [path])
    assert not (storage.root / path).exists()
    empty = StagedTable(storage, RESTRICTED, SCHEMA, "shard-1")
    assert [t.num_rows for t in read_staged(storage, empty.close(), [0, 0], SCHEMA)] == [0, 0]


def test_iter_range_gives_the_batches_a_whole_pass_gives(storage: Storage):
    rows = 1003
    table = pa.table({"trace_id": [f"t{i}" for i in range(rows)], "n": list(range(rows))},
                     schema=SCHEMA)
    storage.write_stream(WAREHOUSE, "ranged", "2026-05-01", BatchStream(
        SCHEMA, [table.slice(i, 170) for i in range(0, rows, 170)]))  # row groups of 170
    reader = storage.batches(WAREHOUSE, "ranged", "2026-05-01")
    whole = [b.column("n").to_pylist() for b in reader.iter_batches(100)]
    parts = [b.column("n").to_pylist() for start, stop in ((0, 300), (300, 700), (700, 5000))
             for b in reader.iter_range(start, stop, 100)]
    assert parts == whole and len(parts) == 11
    assert list(reader.iter_range(2000, 3000, 100)) == []
