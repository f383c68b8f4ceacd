import gzip
import json

import dagster as dg
import numpy as np
import pyarrow as pa
import pytest
import yaml

from feedback_pipeline.definitions import build_definitions
from feedback_pipeline.resources import KeysResource, PipelineResource
from feedback_pipeline.stages import ingest
from feedback_pipeline.storage import Storage


def trace_line(tid: str) -> str:
    return json.dumps({"trace_id": tid, "created_at": "2026-05-02T10:00:00Z",
                       "prompt": f"review {tid}", "candidates": [
                           {"candidate_id": f"{tid}-a", "model_id": "m", "text": "looks fine"}]})


@pytest.mark.parametrize("workers", ["1", "2"])
def test_ids_repeated_across_chunks_and_files_are_quarantined_once(tmp_path, monkeypatch,
                                                                    workers):
    day = tmp_path / "landing" / "traces" / "2026-05-02"
    day.mkdir(parents=True)
    (day / "a.jsonl").write_text("\n".join(
        [trace_line("t1"), trace_line("t2"), "{not json", trace_line("t3"), trace_line("t1"),
         trace_line("t4"), trace_line("t5")]) + "\n")
    (day / "b.jsonl").write_text(trace_line("t4") + "\n" + trace_line("t6") + "\n")
    quarantine: list[dict] = []
    tables = list(ingest.ingest_batches(
        PipelineResource(data_root=str(tmp_path), stage_workers=workers), "2026-05-02",
        quarantine, batch_rows=3))
    ids = [tid for table in tables for tid in table.column("trace_id").to_pylist()]
    assert ids == ["t1", "t2", "t3", "t4", "t5", "t6"]
    repeated = sorted((q["source_file"], q["line_number"]) for q in quarantine
                      if "already seen" in q["reason"])
    assert repeated == [("landing/traces/2026-05-02/a.jsonl", 5),
                        ("landing/traces/2026-05-02/b.jsonl", 1)]
    assert {q["raw_line"] for q in quarantine if "already seen" in q["reason"]} == {
        trace_line("t1"), trace_line("t4")}
    assert sum("not valid JSON" in q["reason"] for q in quarantine) == 1


def day_line(tid: str, day: str = "2026-05-02", **extra) -> str:
    return json.dumps({"trace_id": tid, "created_at": f"{day}T10:00:00Z", "prompt": "review",
                       **extra})


def test_a_day_with_faulty_lines_and_files_lands_every_valid_line(tmp_path, monkeypatch):
    """Issue 17: each fault quarantines only its line (or file), with a reason that names the
    field and the rule and never the value, and the day's run succeeds."""
    monkeypatch.setenv("FEEDBACK_STAGE_WORKERS", "2")
    root = tmp_path / "data"
    landing = root / "landing" / "traces"
    (landing / "2026-05-01").mkdir(parents=True)
    (landing / "2026-05-01" / "a.jsonl").write_text(
        day_line("landed-early", "2026-05-01") + "\n" + day_line("early-2", "2026-05-01") + "\n")
    day = landing / "2026-05-02"
    day.mkdir()
    planted = {
        "bigint": "7" * 5000,
        "year0": "0000-05-02T10:00:00Z",
        "year5": "99999-05-02T10:00:00Z",
        "overflow": "9999-12-31T23:59:59-23:59",
        "cand": "cand with spaces",
        "slice": "slice;drop",
    }
    (day / "a.jsonl").write_text("\n".join([
        day_line("v1"),                                                        # 1
        '{"trace_id": "big-int", "n": ' + planted["bigint"] + "}",             # 2
        '{"trace_id": "deep", "x": ' + "[" * 200_000 + "]" * 200_000 + "}",    # 3
        json.dumps({"trace_id": "y0", "created_at": planted["year0"], "prompt": "p"}),     # 4
        json.dumps({"trace_id": "y5", "created_at": planted["year5"], "prompt": "p"}),     # 5
        json.dumps({"trace_id": "ov", "created_at": planted["overflow"], "prompt": "p"}),  # 6
        day_line("sur", context="ok \ud800 no"),                               # 7
        day_line("cid", candidates=[{"candidate_id": planted["cand"], "text": "t"}]),  # 8
        day_line("sl", slice=planted["slice"]),                                # 9
        day_line("landed-early"),                                              # 10
        day_line("v2"),                                                        # 11
    ]) + "\n")
    with (day / "b.jsonl").open("w") as handle:
        handle.write(day_line("v3") + "\n")
        handle.write(day_line("huge", context="h" * (50 * 1024 * 1024)) + "\n")
        handle.write(day_line("v1") + "\n")                                    # repeated id
        handle.write(day_line("v4") + "\n")
    whole = gzip.compress(("\n".join(day_line(f"gz{i}") for i in range(3000)) + "\n").encode())
    (day / "c.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    (day / "d.jsonl.gz").write_text(day_line("plain-in-gz") + "\n")
    (day / "e.jsonl").write_text(day_line("v5") + "\n")

    defs = build_definitions(str(root))
    instance = dg.DagsterInstance.ephemeral()
    for key in ("2026-05-01", "2026-05-02"):
        result = dg.materialize([ingest.raw_traces], partition_key=key, instance=instance,
                                resources=defs.resources)
        assert result.success, key

    storage = Storage(root)
    ids = storage.read_table("restricted", "raw_traces", "2026-05-02").column(
        "trace_id").to_pylist()
    gz_kept = [i for i in ids if i.startswith("gz")]
    assert 0 < len(gz_kept) < 3000 and gz_kept == [f"gz{i}" for i in range(len(gz_kept))]
    assert [i for i in ids if not i.startswith("gz")] == ["v1", "v2", "v3", "v4", "v5"]

    rows = storage.read_table("restricted", "trace_quarantine", "2026-05-02").to_pylist()
    got = {(q["source_file"].rsplit("/", 1)[-1], q["line_number"]): q["reason"] for q in rows}
    digits = "not valid JSON (a number has more digits than the parser allows)"
    bad_date = "created_at is not an ISO-8601 timestamp with a year from 1 to 9999"
    shape = "does not have the identifier shape [A-Za-z0-9._:/-]{1,128}"
    assert got == {
        ("a.jsonl", 2): digits,
        ("a.jsonl", 3): "not valid JSON (nested deeper than the parser allows)",
        ("a.jsonl", 4): bad_date,
        ("a.jsonl", 5): bad_date,
        ("a.jsonl", 6): "created_at is out of range once converted to UTC",
        ("a.jsonl", 7): "context holds a lone surrogate escape (not valid Unicode)",
        ("a.jsonl", 8): f"candidates[0].candidate_id {shape}",
        ("a.jsonl", 9): f"slice {shape}",
        ("a.jsonl", 10): "trace_id already landed on 2026-05-01",
        ("b.jsonl", 2): f"line is longer than max_line_bytes ({8 * 1024 * 1024} bytes); it was "
                        "skipped unread",
        ("b.jsonl", 3): "trace_id already seen in this partition",
        ("c.jsonl.gz", 0): f"gzip stream ends early (truncated) after line {len(gz_kept)}: "
                              f"lines up to {len(gz_kept)} were kept, the rest of the file is "
                              "quarantined",
        ("d.jsonl.gz", 0): "not a gzip file: the name ends in .gz but the content has no gzip "
                              "header; the whole file is quarantined",
    }
    assert len(rows) == len(got)
    values = [*planted.values(), "landed-early", "plain-in-gz", "huge", "big-int", "v1",
              "7777", "0000-", "99999", "9999-12-31", "\ud800", "\\ud800"]
    for reason in got.values():
        assert not any(v in reason for v in values), reason
    huge = next(q for q in rows if q["line_number"] == 2 and q["source_file"].endswith("b.jsonl"))
    assert huge["raw_line"] == ""

    # landing the day again checks only the other days: its own stored ids are no conflict
    again = dg.materialize([ingest.raw_traces], partition_key="2026-05-02", instance=instance,
                           resources=defs.resources)
    assert again.success
    assert storage.read_table("restricted", "raw_traces", "2026-05-02").column(
        "trace_id").to_pylist() == ids
    assert storage.read_table("restricted", "trace_quarantine", "2026-05-02").num_rows == len(got)


def test_a_secret_or_identifier_shaped_id_is_kept_back_naming_the_field(tmp_path):
    """Ids are never redacted: a token in trace_id or a candidate's model_id, or a listed name
    in the slice, would reach every table; the line stays in the restricted zone instead."""
    token = "ghp_" + "Zq8Lm2Xv" * 4 + "Ab3D"
    day = tmp_path / "landing" / "traces" / "2026-05-02"
    day.mkdir(parents=True)
    lines = [day_line("ok-1"), day_line(token), day_line("ok-2", slice="AKIAIOSFODNN7EXAMPLE"),
             json.dumps({"trace_id": "ok-3", "created_at": "2026-05-02T10:00:00Z",
                         "prompt": "review", "candidates": [
                             {"candidate_id": "ok-3-a", "model_id": token, "text": "fine"}]}),
             day_line("ok-4")]
    (day / "a.jsonl").write_text("\n".join(lines) + "\n")
    quarantine: list[dict] = []
    tables = list(ingest.ingest_batches(PipelineResource(data_root=str(tmp_path)),
                                        "2026-05-02", quarantine))
    assert [t for table in tables for t in table.column("trace_id").to_pylist()] == \
        ["ok-1", "ok-4"]
    reasons = sorted(q["reason"].split(" looks like")[0] for q in quarantine)
    assert reasons == ["candidates[].model_id", "slice", "trace_id"]
    assert not any(token in q["reason"] or token == q["record_id"] for q in quarantine)


def test_landed_elsewhere_names_the_earliest_other_day_and_refutes_hash_collisions(tmp_path):
    """The other days' ids are digested once; an id counts as landed only when both of its
    independent digests match a stored id, so a collision of the first alone is not reported."""
    storage = Storage(tmp_path)
    stored = {"2026-05-01": ["a", "b", "c"], "2026-05-02": ["b", "d"],
              "2026-05-03": ["e", "a"], "2026-04-30": ["d"]}
    for day, ids in stored.items():
        storage.write_table("restricted", "raw_traces", day, pa.table({"trace_id": ids}))
    landed = ingest.LandedElsewhere(storage, "2026-05-03")
    try:
        chunk = pa.table({"trace_id": ["zz", "a", "b", "d", "e", "new"]})
        assert landed.days_of(chunk) == {"a": "2026-05-01", "b": "2026-05-01",
                                         "d": "2026-04-30"}
        assert landed.days_of(pa.table({"trace_id": ["e", "new"]})) == {}
        assert landed.days_of(chunk.slice(0, 0)) == {}
        # plant stored ids whose first digest collides with "zz" and "new" (the second differs)
        planted = landed.con.sql("SELECT hash('zz'), hash('new')").fetchall()[0]
        first = np.concatenate([landed.first, np.array(planted, dtype=np.uint64)])
        order = np.argsort(first, kind="stable")
        landed.first = first[order]
        landed.second = np.concatenate([landed.second, np.array([1, 2], np.uint64)])[order]
        landed.day_of = np.concatenate([landed.day_of, np.array([0, 1], np.uint16)])[order]
        assert landed.days_of(chunk) == {"a": "2026-05-01", "b": "2026-05-01",
                                         "d": "2026-04-30"}
        assert landed.days_of(pa.table({"trace_id": ["zz", "new"]})) == {}
    finally:
        landed.close()
    alone = ingest.LandedElsewhere(Storage(tmp_path / "empty"), "2026-05-03")
    assert alone.days_of(pa.table({"trace_id": ["a"]})) == {}
    alone.close()


def _with_line_limit(root, limit: int) -> None:
    path = root / "config" / "policy.yaml"
    policy = yaml.safe_load(path.read_text())
    policy["max_line_bytes"] = limit
    path.write_text(yaml.safe_dump(policy))


def _append_long_line(path, limit: int) -> int:
    """Append a line longer than `limit`; its 1-based line number."""
    number = sum(1 for _ in path.open("rb")) + 1
    with path.open("a") as handle:
        handle.write(json.dumps({"trace_id": "t-long", "answer": "x" * (limit + 100)}) + "\n")
    return number


def _longest_line(paths) -> int:
    return max(len(line.rstrip(b"\n")) for p in paths for line in p.open("rb"))


def test_review_and_judge_lines_longer_than_the_policy_limit_are_quarantined(
        generated_root, tmp_path, monkeypatch):
    """Reviews and judge labels are read with the policy's max_line_bytes, as traces are: the
    long line is one quarantine row with its line number, every other line is kept."""
    from feedback_pipeline.core.review import SpooledReviews
    from feedback_pipeline.stages import judge, review
    from feedback_pipeline_tests.conftest import DAYS, copy_root

    monkeypatch.setenv("FEEDBACK_STAGE_WORKERS", "1")
    monkeypatch.setenv("FEEDBACK_VAULT_KEY_FILE", str(tmp_path / "vault.key"))
    root = copy_root(generated_root, tmp_path / "data")
    storage = Storage(root)
    day = DAYS[0]
    review_files = storage.landing_files("reviews", day, (".jsonl",))
    judge_files = storage.landing_files("judge", day, (".jsonl",))
    assert review_files and judge_files

    def load():
        pipeline = PipelineResource(data_root=str(root), stage_workers="1")
        keys = KeysResource(data_root=str(root), vault_key_file=str(tmp_path / "vault.key"))
        spool = SpooledReviews(pa.array(["not-a-landed-trace"]), tmp_path / f"spool{len(runs)}")
        bad, _ = review._load_reviews(pipeline, keys.reviewer_pseudonym_key(), day, spool)
        labels, judge_bad = judge.load_judge_labels(pipeline, day)
        runs.append(None)
        return spool.rows, bad, len(labels), judge_bad

    runs: list[None] = []
    rows, bad, labels, judge_bad = load()
    limit = max(1024, _longest_line(review_files + judge_files))
    _with_line_limit(root, limit)
    review_line = _append_long_line(review_files[0], limit)
    judge_line = _append_long_line(judge_files[0], limit)
    rows_after, bad_after, labels_after, judge_bad_after = load()

    reason = f"line is longer than max_line_bytes ({limit} bytes); it was skipped unread"
    assert (rows_after, labels_after) == (rows, labels), "every other line is kept"
    for before, after, path, number in ((bad, bad_after, review_files[0], review_line),
                                        (judge_bad, judge_bad_after, judge_files[0],
                                         judge_line)):
        new = [q for q in after if q not in before]
        assert [(q["source_file"], q["line_number"], q["reason"], q["raw_line"])
                for q in new] == [(storage.relative(path), number, reason, "")]
        assert len(after) == len(before) + 1


def test_entries_ingest_does_not_read_are_quarantined_not_passed_over(tmp_path):
    """A landing file of another kind (.json, .jsonl.zst, .jsonl.bz2), a folder named like a
    trace file, a symlink loop and a broken link used to be skipped in silence; each is one
    file-level row saying it was not read, and the day's trace files flow on."""
    import bz2
    import os

    day = tmp_path / "landing" / "traces" / "2026-05-02"
    day.mkdir(parents=True)
    (day / "a.jsonl").write_text(day_line("v1") + "\n")
    (day / "b.json").write_text(day_line("j1") + "\n")
    (day / "c.jsonl.zst").write_bytes(b"(\xb5/\xfd" + b"\0" * 8)
    (day / "d.jsonl.bz2").write_bytes(bz2.compress((day_line("bz1") + "\n").encode()))
    (day / "e.jsonl").mkdir()
    (day / "e.jsonl" / "inner.jsonl").write_text(day_line("in-dir") + "\n")
    os.symlink(day / "g.jsonl", day / "f.jsonl")
    os.symlink(day / "f.jsonl", day / "g.jsonl")
    os.symlink(tmp_path / "nowhere.jsonl", day / "h.jsonl.gz")
    (day / "z.jsonl.gz").write_bytes(gzip.compress((day_line("v2") + "\n").encode()))
    quarantine: list[dict] = []
    tables = list(ingest.ingest_batches(PipelineResource(data_root=str(tmp_path)),
                                        "2026-05-02", quarantine))
    assert [t for table in tables for t in table.column("trace_id").to_pylist()] == ["v1", "v2"]
    link = "is a link that leads to no file (broken, or a loop); not read"
    assert [(q["source_file"], q["line_number"], q["reason"]) for q in quarantine] == [
        (f"landing/traces/2026-05-02/{name}", 0, reason) for name, reason in [
            ("b.json", ingest.NOT_A_TRACE_FILE), ("c.jsonl.zst", ingest.NOT_A_TRACE_FILE),
            ("d.jsonl.bz2", ingest.NOT_A_TRACE_FILE),
            ("e.jsonl", "is a folder, not a file; nothing in it was read"),
            ("f.jsonl", link), ("g.jsonl", link), ("h.jsonl.gz", link)]]


def test_a_file_that_cannot_be_read_is_one_row_and_the_day_flows_on(tmp_path, monkeypatch):
    """chmod 000 does not stop root (the tests' user), so the OSError an unreadable file
    raises for any other user is planted, on open and in the middle of a read: it failed the
    whole day; now each such file is one file-level row keeping the lines read before the
    error, and the other files flow on."""
    day = tmp_path / "landing" / "traces" / "2026-05-02"
    day.mkdir(parents=True)
    (day / "a.jsonl").write_text(day_line("v1") + "\n")
    (day / "b.jsonl").write_text(day_line("b1") + "\n" + day_line("b2") + "\n")
    (day / "c.jsonl").write_text(day_line("c1") + "\n")
    import io

    from feedback_pipeline.core import contract

    class Refused(io.BytesIO):
        def read(self, size=-1):  # the first block reads, the next one fails
            if self.tell():
                raise PermissionError(13, "Permission denied", str(day / "b.jsonl"))
            return super().read(size)

    def fake_open(path, mode="r", *args, **kwargs):
        if str(path).endswith("b.jsonl"):
            return Refused(day_line("b1").encode() + b"\n" + day_line("b2").encode())
        if str(path).endswith("c.jsonl"):
            raise PermissionError(13, "Permission denied", str(path))
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr(contract, "open", fake_open, raising=False)
    monkeypatch.setattr(contract, "READ_BLOCK_BYTES", len(day_line("b1")) + 5)
    quarantine: list[dict] = []
    tables = list(ingest.ingest_batches(PipelineResource(data_root=str(tmp_path)),
                                        "2026-05-02", quarantine))
    assert [t for table in tables for t in table.column("trace_id").to_pylist()] == [
        "v1", "b1"]
    reason = ("file could not be read (PermissionError) after line {0}: lines up to {0} were "
              "kept, the rest of the file is quarantined")
    assert [(q["source_file"], q["line_number"], q["reason"]) for q in quarantine] == [
        ("landing/traces/2026-05-02/b.jsonl", 0, reason.format(1)),
        ("landing/traces/2026-05-02/c.jsonl", 0, reason.format(0))]
    assert not any(str(day) in q["reason"] for q in quarantine)


def test_encoding_and_json_faults_cost_only_their_line_through_the_stage(tmp_path):
    """A UTF-8 byte order mark (it cost the file's first line), bytes that are not UTF-8 (they
    were kept as U+FFFD), CRLF endings, NaN and a field named twice, each in a day's files:
    only the faulty line is quarantined, by rule and without its value."""
    secret = "canary.leak4417@probe-mail.example"
    day = tmp_path / "landing" / "traces" / "2026-05-02"
    day.mkdir(parents=True)
    (day / "a.jsonl").write_bytes(b"\xef\xbb\xbf" + "\r\n".join(
        [day_line("v1"), day_line("v2", prompt=f"x {secret}")]).encode() + b"\r\n")
    (day / "b.jsonl.gz").write_bytes(gzip.compress(b"\xef\xbb\xbf" + (day_line("v3") + "\n"
                                                                      ).encode()))
    (day / "c.jsonl").write_bytes(b"\n".join([
        day_line("u1", prompt=f"y {secret} Z").encode().replace(b" Z", b" \xc3Z"),
        day_line("v4").encode(),
        day_line("n1", prompt=secret)[:-1].encode() + b', "t": NaN}',
        day_line("d1")[:-1].encode() + f', "prompt": "{secret}"}}'.encode(),
        day_line("v5").encode()]) + b"\n")
    quarantine: list[dict] = []
    tables = list(ingest.ingest_batches(PipelineResource(data_root=str(tmp_path)),
                                        "2026-05-02", quarantine))
    assert [t for table in tables for t in table.column("trace_id").to_pylist()] == [
        "v1", "v2", "v3", "v4", "v5"]
    got = [(q["source_file"].rsplit("/", 1)[-1], q["line_number"], q["reason"].split(" (")[0])
           for q in quarantine]
    assert got == [("c.jsonl", 1, "line is not valid UTF-8"), ("c.jsonl", 3, "not valid JSON"),
                   ("c.jsonl", 4, "field prompt appears more than once in one object")]
    assert not any(secret in q["reason"] for q in quarantine)
    assert all(secret in q["raw_line"] for q in quarantine)


def test_chunks_count_the_raw_line_an_undecodable_line_carries():
    """An undecodable line travels with its raw line (up to max_line_bytes): a chunk counts
    those characters, not the short reason, so a file of long undecodable lines still makes
    chunks bounded by CHUNK_CHARS."""
    from feedback_pipeline.core.contract import UndecodableLine

    items = [(n, UndecodableLine("line is not valid UTF-8 (byte 1 of the line)", "x" * 1000))
             for n in range(1, 11)]
    assert [len(c) for c in ingest._chunks_of(items, rows=100, chars=2500)] == [3, 3, 3, 1]
