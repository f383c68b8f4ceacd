"""reviewed_labels on a real Dagster instance: reviews matched to their trace wherever they
landed, each folder's problems reported once, adjudications closed by an adjudicator."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pyarrow.compute as pc
import pytest
import yaml

from feedback_pipeline.core.contract import read_lines
from feedback_pipeline.core.review import UNKNOWN_TRACE_REASON
from feedback_pipeline.definitions import build_definitions
from feedback_pipeline.jobs import DAILY_GROUPS, groups
from feedback_pipeline.resources import PipelineResource
from feedback_pipeline.storage import Storage
from feedback_pipeline_tests.conftest import DAYS, copy_root

PULL_DAY = "2026-05-09"  # a review day without traces, as a Label Studio pull lands


def materialize_days(root: Path) -> dict[str, dg.ExecuteInProcessResult]:
    defs = build_definitions(str(root))
    assets = [a for a in defs.assets if getattr(a, "partitions_def", None) is not None]
    frozen = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)
              and dg.AssetKey("frozen_evaluation_set") in a.keys]
    instance = dg.DagsterInstance.ephemeral()
    dg.materialize(frozen, resources=defs.resources, instance=instance)
    results = {}
    for day in DAYS:
        result = dg.materialize(assets, partition_key=day, resources=defs.resources,
                                instance=instance,
                                selection=groups(DAILY_GROUPS))
        assert result.success, day
        results[day] = result
    return results


def quarantine_reasons(storage: Storage) -> list[str]:
    return [r for d in DAYS for r in
            storage.read_table("restricted", "review_quarantine", d).column("reason").to_pylist()]


def test_reviews_landed_on_another_day_reach_their_traces_and_only_unknown_ids_quarantine(
        generated_root, pipeline_run, tmp_path):
    in_place = quarantine_reasons(Storage(pipeline_run[0]))
    root = copy_root(generated_root, tmp_path / "data")
    storage = Storage(root)
    moved = storage.landing_dir("reviews", PULL_DAY)
    moved.mkdir(parents=True)
    lines = 0
    for day in DAYS:  # every review of both days lands in one folder, as one pull would
        for path in storage.landing_files("reviews", day, (".jsonl",)):
            lines += sum(1 for _ in read_lines(path))
            shutil.move(str(path), moved / f"{day}-{path.name}")
    stranger = {"review_id": "r-stray", "trace_id": "never-landed-7", "reviewer_id": "rev-01",
                "rubric_version": "code-review-rubric-v4", "task": "demonstration",
                "answer": "Rerun the job."}
    with open(moved / "extra.jsonl", "w", encoding="utf-8") as out:
        out.write(json.dumps(stranger) + "\n")

    materialize_days(root)

    labelled = sum(storage.read_table("warehouse", "reviewed_labels", d).num_rows for d in DAYS)
    reasons = quarantine_reasons(storage)
    assert labelled + len(reasons) == lines + 1, "every landed review is labelled or quarantined"
    assert sorted(reasons) == sorted([*in_place, UNKNOWN_TRACE_REASON]), \
        "the same quarantine as with every review in its trace's folder, plus the stranger"
    assert not any("partition" in r for r in reasons)
    assert "never-landed-7" not in UNKNOWN_TRACE_REASON
    for day in DAYS:
        labels = storage.read_table("warehouse", "reviewed_labels", day)
        assert labels.num_rows > 0, day
        traces = storage.read_table("warehouse", "redacted_traces", day).column("trace_id")
        assert pc.all(pc.is_in(labels["trace_id"], value_set=traces)).as_py()


@pytest.mark.slow
def test_an_adjudicator_in_reviewers_yaml_closes_an_open_item(generated_root, tmp_path):
    root = copy_root(generated_root, tmp_path / "data")
    storage = Storage(root)
    materialize_days(root)
    day = DAYS[1]
    queued = storage.read_table("warehouse", "adjudication_queue", day).to_pylist()
    pairwise = [q for q in queued if q["task"] == "pairwise" and q["status"] == "OPEN"]
    assert pairwise, "the generated day has a pairwise disagreement"
    follow_up = json.loads((root / "exports" / "follow_up_tasks" / day /
                            "label_studio_tasks.json").read_text())
    item = next(t["data"] for t in follow_up if t["data"]["trace_id"] == pairwise[0]["trace_id"]
                and t["data"]["task"] == "adjudication")
    assert item["adjudicates"] == "pairwise" and item["adjudication_reason"]
    # the policy every task shares is written once per export, beside the tasks
    rubric = PipelineResource(data_root=str(root)).rubric()
    for kind in ("review_tasks", "follow_up_tasks"):
        folder = root / "exports" / kind / day
        shared = json.loads((folder / "rubric.json").read_text())
        assert shared == {"rubric_version": rubric.version, "policy_text": rubric.policy_text}
        for name in ("label_studio_tasks.json", "tasks.jsonl"):
            if (folder / name).exists():
                assert rubric.policy_text[:40] not in (folder / name).read_text()
    assert {t["data"]["rubric_version"] for t in follow_up} == {rubric.version}

    (root / "config" / "reviewers.yaml").write_text(yaml.safe_dump(
        {"reviewers": [{"id": "lead@example.com", "role": "adjudicator"}]}))
    good = {f: True for f in ("technically_correct", "actionable", "clear")}
    decision = {"review_id": "adj-1", "trace_id": item["trace_id"],
                "reviewer_id": "lead@example.com", "rubric_version": item["rubric_version"],
                "task": "pairwise", "adjudication": True, "reason": "A cites the failing test",
                "reviewed_at": "2026-05-03T09:00:00Z",
                "criteria": {item["candidate_a_id"]: good,
                             item["candidate_b_id"]: {**good, "technically_correct": False}}}
    folder = storage.landing_dir("reviews", PULL_DAY)
    folder.mkdir(parents=True)
    (folder / "adjudication.jsonl").write_text(json.dumps(decision) + "\n")
    materialize_days(root)

    closed = {q["trace_id"]: q for q in
              storage.read_table("warehouse", "adjudication_queue", day).to_pylist()}
    record = closed[item["trace_id"]]
    assert (record["status"], record["decision"], record["decision_reason"]) == (
        "RESOLVED", "A", "A cites the failing test")
    assert record["decided_by"].startswith("rvw-") and "@" not in record["decided_by"]
    pairs = storage.read_table("warehouse", "preference_pairs", day).to_pylist()
    assert [p["outcome"] for p in pairs if p["trace_id"] == item["trace_id"]] == ["A"]
    after = json.loads((root / "exports" / "follow_up_tasks" / day /
                        "label_studio_tasks.json").read_text())
    assert item["task_id"] not in {t["data"]["task_id"] for t in after}


def _load(root: Path, day: str, spool_dir: Path):
    """(reviews read, quarantine rows) of `day`'s partition, every review unmatched (no
    redacted traces are stored), so every landed review of its owned folders is counted."""
    import pyarrow as pa

    from feedback_pipeline.core.review import SpooledReviews
    from feedback_pipeline.resources import KeysResource
    from feedback_pipeline.stages import review

    pipeline = PipelineResource(data_root=str(root), stage_workers="1")
    keys = KeysResource(data_root=str(root), vault_key_file=str(spool_dir / "vault.key"))
    spool = SpooledReviews(pa.array(["not-a-landed-trace"]), spool_dir / "spool")
    bad, _ = review._load_reviews(pipeline, keys.reviewer_pseudonym_key(), day, spool)
    return spool.rows, bad


def test_bad_exports_and_unread_entries_are_file_rows_and_gzip_reviews_are_read(
        generated_root, tmp_path, monkeypatch):
    """A Label Studio export that is not UTF-8, 200,000 deep, holds a 5,000-digit integer or
    is cut off failed the whole reviewed_labels step; each is one file-level row of the
    folder's owner, and the other files flow on. A .jsonl.gz review file is read like a
    .jsonl one; every other entry (a .txt, a .json.gz, a folder, a left-over temporary file of
    a pull) is one row saying it was not read. Only the folder's owner reports it."""
    import gzip

    from feedback_pipeline.core.contract import TEMPORARY_FILE
    from feedback_pipeline.stages.review import NOT_A_REVIEW_FILE

    monkeypatch.setenv("FEEDBACK_STAGE_WORKERS", "1")
    root = copy_root(generated_root, tmp_path / "data")
    storage = Storage(root)
    day, other = DAYS
    rows, bad = _load(root, day, tmp_path / "before")
    other_rows, other_bad = _load(root, other, tmp_path / "other-before")

    folder = storage.landing_dir("reviews", day)
    source = storage.landing_files("reviews", day, (".jsonl",))[0]
    lines = [json.loads(text) for _, text in read_lines(source)][:3]
    for n, line in enumerate(lines):
        line["review_id"] = f"gz-{n}"
    (folder / "more.jsonl.gz").write_bytes(gzip.compress(
        "".join(json.dumps(line) + "\n" for line in lines).encode()))
    (folder / "a-not-utf8.json").write_bytes(b'[{"id": 1, "note": "\xff"}]')
    (folder / "b-deep.json").write_text("[" * 200_000 + "]" * 200_000)
    (folder / "c-bigint.json").write_text('[{"id": ' + "9" * 5000 + "}]")
    (folder / "d-cut.json").write_text('[{"id": 1, "data": {"trace_id": "t')
    (folder / "e-empty.json").write_text("[]")
    (folder / "f-object.json").write_text('{"id": 1}')
    (folder / "notes.txt").write_text("reviewed by hand\n")
    (folder / "old.json.gz").write_bytes(gzip.compress(b"[]"))
    (folder / "nested").mkdir()
    (folder / "nested" / "x.jsonl").write_text(json.dumps(lines[0]) + "\n")
    (folder / ".labelstudio-pairwise.json.4242.tmp").write_text("[")
    (storage.landing_dir("reviews", other) / "z-not-utf8.json").write_bytes(b"\xfe[]")

    rows_after, bad_after = _load(root, day, tmp_path / "after")
    new = [(q["source_file"].rsplit("/", 1)[-1], q["line_number"], q["reason"])
           for q in bad_after if q not in bad]
    assert rows_after == rows + len(lines), "every line of the gzip file is read"
    not_read = "the file name does not end in .jsonl, .jsonl.gz or .json"
    assert NOT_A_REVIEW_FILE.startswith(not_read)
    assert sorted(new) == sorted([
        (".labelstudio-pairwise.json.4242.tmp", 0, TEMPORARY_FILE),
        ("a-not-utf8.json", 0, "file is not valid UTF-8 (byte 21 of the file)"),
        ("b-deep.json", 0, "not valid JSON (nested deeper than the parser allows)"),
        ("c-bigint.json", 0, "not valid JSON (a number has more digits than the parser "
                             "allows)"),
        ("d-cut.json", 1, "not valid JSON (Unterminated string starting at column 33)"),
        ("f-object.json", 0, "a Label Studio export must be a JSON list of tasks"),
        ("nested", 0, "is a folder, not a file; nothing in it was read"),
        ("notes.txt", 0, NOT_A_REVIEW_FILE),
        ("old.json.gz", 0, NOT_A_REVIEW_FILE),
    ])
    assert all(q["raw_line"] == "" and q["record_id"] is None for q in bad_after
               if q not in bad)
    # the other day's folder is owned by the other partition: reported there, once
    other_rows_after, other_bad_after = _load(root, other, tmp_path / "other-after")
    assert other_rows_after == other_rows
    assert [(q["source_file"].rsplit("/", 1)[-1], q["reason"]) for q in other_bad_after
            if q not in other_bad] == [("z-not-utf8.json",
                                        "file is not valid UTF-8 (byte 1 of the file)")]


def test_a_repeated_review_id_is_one_review_and_the_repeats_are_counted_or_quarantined(
        generated_root, pipeline_run, tmp_path):
    """Two reviews landed again with identical content (another file) are dropped and
    counted in reviewed_labels' metadata; one landed again with a different reason is
    quarantined (the latest is kept) naming the rule, never the id. Every review is still
    labelled once."""
    from feedback_pipeline.core.review import REPEATED_REVIEW_ID

    day = DAYS[0]
    before = Storage(pipeline_run[0])
    labelled_before = before.read_table("warehouse", "reviewed_labels", day)
    accepted = set(labelled_before.column("review_id").to_pylist())
    root = copy_root(generated_root, tmp_path / "data")
    storage = Storage(root)
    source = storage.landing_files("reviews", day, (".jsonl",))[0]
    valid = [text for _, text in read_lines(source)
             if text.startswith("{") and json.loads(text).get("review_id") in accepted][:3]
    assert len(valid) == 3
    changed = json.loads(valid[2])
    changed["reason"] = "a second thought about the fixture"
    (source.parent / "again.jsonl").write_text(
        valid[0] + "\n" + valid[1] + "\n" + json.dumps(changed) + "\n", encoding="utf-8")

    results = materialize_days(root)

    labels = storage.read_table("warehouse", "reviewed_labels", day)
    assert sorted(labels.column("review_id").to_pylist()) == sorted(
        labelled_before.column("review_id").to_pylist()), "each review labelled once"
    reasons = storage.read_table("restricted", "review_quarantine", day).column(
        "reason").to_pylist()
    assert reasons.count(REPEATED_REVIEW_ID) == 1
    assert changed["review_id"] not in REPEATED_REVIEW_ID
    metadata = next(e for e in results[day].get_asset_materialization_events()
                    if e.asset_key == dg.AssetKey("reviewed_labels")).materialization.metadata
    assert metadata["repeated_reviews_dropped"].value == 2


@pytest.mark.slow  # a daily run of its own; a day with traces reading every folder is the
# reviews-landed-on-another-day test above
def test_a_day_without_traces_reads_no_other_days_reviews(pipeline_run, tmp_path, monkeypatch):
    import feedback_pipeline.stages.review as review_stage

    root = copy_root(pipeline_run[0], tmp_path / "data")
    parsed: list[str] = []
    real_parse = review_stage.parse_review_chunk

    def recording(lines, *, source, settings):
        parsed.append(source)
        return real_parse(lines, source=source, settings=settings)

    monkeypatch.setenv("FEEDBACK_STAGE_WORKERS", "1")  # chunks parsed here, where it records
    monkeypatch.setattr(review_stage, "parse_review_chunk", recording)
    defs = build_definitions(str(root))
    assets = [a for a in defs.assets if getattr(a, "partitions_def", None) is not None]
    empty_day = "2026-05-05"  # nothing landed; both landed days' folders are their own
    result = dg.materialize(assets, partition_key=empty_day, resources=defs.resources,
                            instance=dg.DagsterInstance.ephemeral(),
                            selection=groups(DAILY_GROUPS))
    assert result.success
    assert parsed == [], "another day's reviews cannot be of a day without traces"
    storage = Storage(root)
    assert storage.read_table("warehouse", "reviewed_labels", empty_day).num_rows == 0
    assert storage.read_table("restricted", "review_quarantine", empty_day).num_rows == 0
