"""review_tasks out, reviewed_labels in: the rubric decides, every artifact in its own lane."""


import collections
import functools
import itertools
import tempfile
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from feedback_pipeline.core.contract import (
    not_accepted_reason,
    quarantine_row,
    quarantine_to_table,
    read_lines,
    reason_category,
    unread_entries,
)
from feedback_pipeline.core.labelstudio import (
    IMPORT_FILE,
    RUBRIC_FILE,
    TASK_DATA_FIELDS,
    make_pseudonymiser,
)
from feedback_pipeline.core.review import (
    LANE_SCHEMAS,
    FirstPositions,
    SpooledReviews,
    resolve_review_batches,
)
from feedback_pipeline.core.review_intake import (
    IntakeSettings,
    owned_review_days,
    parse_review_chunk,
    parse_review_export,
    read_review_export,
)
from feedback_pipeline.core.runtime import (
    ordered_calls,
    release_free_memory,
    stop_workers,
)
from feedback_pipeline.core.tasks import (
    TASK_SCHEMA,
    TASK_TRACE_COLUMNS,
    TaskSettings,
    build_scanned_tasks,
    build_task_table,
    export_task_files,
    import_task_json,
    issued_work,
    shared_text_json,
)
from feedback_pipeline.core.texts import FOLLOW_UP_TASK_TEXTS, residue_in_table
from feedback_pipeline.partitions import daily_partitions
from feedback_pipeline.resources import KeysResource, PipelineResource
from feedback_pipeline.stages.common import (
    QUEUE_IDS,
    RESTRICTED_IO,
    WAREHOUSE_IO,
    counts_table,
    max_line_bytes,
    residue_check_result,
    value_counts,
)
from feedback_pipeline.storage import WAREHOUSE, BatchStream, PartitionBatches, Storage

REVIEW_LINE_SUFFIXES = (".jsonl", ".jsonl.gz")  # contract reviews, one per line (gzip too)
REVIEW_SUFFIXES = (*REVIEW_LINE_SUFFIXES, ".json")  # and Label Studio exports
NOT_A_REVIEW_FILE = not_accepted_reason("review", REVIEW_SUFFIXES)


@dg.asset(
    io_manager_key=WAREHOUSE_IO,
    partitions_def=daily_partitions,
    group_name="review",
    kinds={"parquet"},
    description="The day's labeling round as redacted review tasks (each with its round id and "
                "arm), also exported as JSONL and as a Label Studio import file for reviewers.",
    check_specs=[dg.AssetCheckSpec("no_residue_in_review_tasks", asset="review_tasks",
                                   partitions_def=daily_partitions,
                                   blocking=True,
                                   description="Nothing a reviewer receives holds raw text.")],
)
def review_tasks(context: dg.AssetExecutionContext, pipeline: PipelineResource,
                 redacted_traces: PartitionBatches, selected_batch: pd.DataFrame):
    """Streams the round's tasks to the table, then the stored table to both export files; an
    export appears only when the whole day passed the residue scan. A backlog item issued today
    is read from its own trace day's partition."""
    rubric = pipeline.rubric()
    deny_terms = pipeline.deny_terms()
    storage = pipeline.storage
    day = context.partition_key
    folder = storage.exports_dir / "review_tasks" / day
    issued = issued_work(selected_batch)
    offending: list[str] = []
    kinds: dict[str, int] = {}
    scanned = [0]  # tasks written and scanned, for the residue check

    settings = TaskSettings(rubric.version, rubric.policy_text, tuple(deny_terms))
    columns = [c for c in TASK_TRACE_COLUMNS if c in redacted_traces.schema.names]
    trace_days = sorted(set(selected_batch["trace_day"].dropna().astype(str)))

    def work():
        for trace_day in trace_days:
            wanted = issued.filter(pc.equal(issued["trace_day"], trace_day))
            source = (redacted_traces if trace_day == day
                      else storage.batches(WAREHOUSE, "redacted_traces", trace_day))
            for batch in source.iter_batches(TASK_BATCH_ROWS, columns=columns):
                ids = batch.column("trace_id")
                own = wanted.filter(pc.is_in(wanted["trace_id"], value_set=ids))
                if own.num_rows:
                    yield functools.partial(build_scanned_tasks, batch, own, settings=settings)

    def task_batches():
        for tasks, bad, found in ordered_calls(work(), pipeline.workers):
            offending.extend(bad)
            for kind, n in found.items():
                kinds[kind] = kinds.get(kind, 0) + n
            scanned[0] += tasks.num_rows
            yield tasks

    by_task = {str(k): int(v) for k, v in selected_batch["task"].value_counts().items()}
    yield dg.Output(BatchStream(TASK_SCHEMA, task_batches()), metadata={
        "round_id": str(selected_batch["round_id"].iloc[0]) if len(selected_batch) else "none",
        "by_task": counts_table(by_task, "task") if by_task else dg.MetadataValue.md("none")})
    stop_workers()  # the export runs two DuckDB queries of up to 512 MB each: free the room
    if offending:
        context.log.error(f"{len(offending)} task(s) failed the residue scan; export withheld")
    else:
        source = storage.scan_sql(WAREHOUSE, "review_tasks", [day])
        with storage.staged_path(folder / "tasks.jsonl") as jsonl, \
                storage.staged_path(folder / IMPORT_FILE) as studio:
            export_task_files(storage.connect, source, jsonl, studio, TASK_DATA_FIELDS)
        storage.write_text(folder / RUBRIC_FILE, shared_text_json(rubric.version,
                                                                  rubric.policy_text))
    yield residue_check_result("no_residue_in_review_tasks", "review_tasks", offending, kinds,
                               scanned[0])


REVIEW_CHUNK_LINES = 25_000
TASK_BATCH_ROWS = 10_000
RESOLVE_BATCH_ROWS = 5_000  # traces per worker task: bounds each worker's Python objects
REVIEW_GROUP_TRACES = 50_000  # traces per spooled review group: one group's reviews in memory
TRACE_COLUMNS = ["trace_id", "prompt", "context", "extra_json", "candidates", "approved_answer",
                 "slice", "redaction_version", "prompt_template_version", "policy_version",
                 "prompt_fingerprint"]


def _load_reviews(pipeline: PipelineResource, pseudonym_key: bytes, day: str,
                  reviews: SpooledReviews) -> tuple[list[dict], dict[str, int]]:
    """Every landed review of the day's traces, whichever folder it landed in, into `reviews`
    (chunks parsed in worker processes); the quarantine rows of the folders this partition
    owns (core.review_intake.owned_review_days); and, of those folders' reviews, how many
    belong to each other day. A review whose trace no landed day knows is added unmatched,
    so resolution quarantines it with the reason.

    Read: `.jsonl` and `.jsonl.gz` files of contract reviews (core.contract.read_lines: a bad
    line or a broken gzip stream costs only what it holds) and `.json` Label Studio exports
    (core.review_intake.read_review_export: an export that is not UTF-8, not JSON, nested too
    deep or holding a too-long integer is one file-level row, and the other files flow on).
    Every other entry of an owned folder (another kind of file, a folder, a broken link, a
    left-over temporary file) is one file-level row saying it was not read."""
    storage = pipeline.storage
    intake = IntakeSettings(
        known_rubrics=frozenset(pipeline.known_rubrics()),
        pseudonym_key=pseudonym_key,
        deny_terms=tuple(pipeline.deny_terms()),
        redaction_version=pipeline.policy.redaction_version)
    review_days = storage.landing_days("reviews")
    owned = set(owned_review_days(day, storage.landing_days("traces"), review_days))
    quarantine: list[dict] = []
    strays: list[pa.Table] = []  # owned folders' reviews of traces outside the day
    limit = max_line_bytes(pipeline)
    owner_of_chunk: collections.deque[bool] = collections.deque()

    def take(table: pa.Table, bad: list[dict], own: bool) -> None:
        if own:
            quarantine.extend(bad)
        if not table.num_rows:
            return
        mine = reviews.covers(table["trace_id"])
        reviews.add(table.filter(pa.array(mine)))
        if own and not mine.all():
            strays.append(table.filter(pa.array(~mine)))

    # another day's folder is read only for this day's reviews: a day without traces (nothing
    # landed, a weekend) has none there, and skips parsing every review of every other day
    read = [folder for folder in review_days if folder in owned or reviews.trace_count]

    def chunks():
        for folder in read:
            if folder in owned:
                folder_path = storage.landing_dir("reviews", folder)
                quarantine.extend(
                    quarantine_row(name, 0, reason, "", None) for name, reason in
                    unread_entries(folder_path, storage.relative(folder_path),
                                   REVIEW_SUFFIXES, NOT_A_REVIEW_FILE))
            for path in storage.landing_files("reviews", folder, REVIEW_LINE_SUFFIXES):
                lines = read_lines(path, limit)
                while chunk := list(itertools.islice(lines, REVIEW_CHUNK_LINES)):
                    owner_of_chunk.append(folder in owned)
                    yield functools.partial(parse_review_chunk, chunk,
                                            source=storage.relative(path), settings=intake)

    for table, bad in ordered_calls(chunks(), pipeline.workers):
        take(table, bad, owner_of_chunk.popleft())
    for folder in read:
        for path in storage.landing_files("reviews", folder, (".json",)):
            source = storage.relative(path)
            payload, unreadable = read_review_export(path, source)
            if payload is None:
                if folder in owned:
                    quarantine.extend(unreadable)
                continue
            take(*parse_review_export(payload, source, intake), folder in owned)
    elsewhere = _place_strays(storage, day, strays, reviews)
    release_free_memory()
    return quarantine, elsewhere


def _place_strays(storage: Storage, day: str, strays: list[pa.Table],
                  reviews: SpooledReviews) -> dict[str, int]:
    """Reviews landed in this partition's folders for traces of other days: counted per day
    (their own day's partition resolves them); those no stored day knows are added to
    `reviews` unmatched, to be quarantined."""
    if not strays:
        return {}
    stray = pa.concat_tables(strays)
    scan = storage.scan_sql(WAREHOUSE, "redacted_traces")
    found = pa.table({"trace_id": pa.array([], pa.string()), "day": pa.array([], pa.string())})
    if scan is not None:
        with storage.connect() as con:
            con.register("stray_ids", pa.table({"trace_id": stray["trace_id"]}))
            found = con.sql(f"SELECT DISTINCT CAST(trace_id AS VARCHAR) AS trace_id, "
                            f"CAST(date AS VARCHAR) AS day FROM {scan} WHERE date <> '{day}' "
                            "AND trace_id IN (SELECT trace_id FROM stray_ids)").to_arrow_table()
    known = pc.is_in(stray["trace_id"], value_set=found["trace_id"])
    reviews.add(stray.filter(pc.invert(known)))
    slot = pc.index_in(stray.filter(known)["trace_id"], value_set=found["trace_id"])
    days = pc.take(found["day"], slot)
    return {str(k): int(v) for k, v in
            ((item["values"], item["counts"]) for item in pc.value_counts(days).to_pylist())}


def adjudicator_pseudonyms(roles: dict[str, str], pseudonym_key: bytes) -> frozenset[str]:
    """The pseudonyms of config/reviewers.yaml's adjudicators, as their reviews carry them."""
    pseudonym = make_pseudonymiser(pseudonym_key)
    return frozenset(pseudonym(who) for who, role in roles.items() if role == "adjudicator")


FOLLOW_UP_SCHEMA = pa.schema([("trace_id", pa.string()), ("task", pa.string()),
                              ("adjudicates", pa.string()), ("reason", pa.string())])


def open_follow_ups(lanes: dict[str, pa.Table]) -> pa.Table:
    """The work resolution leaves open: adjudications no adjudicator has closed, and incidents
    without a resolution; each becomes a Label Studio task of its own project."""
    queued = lanes["adjudication"].filter(pc.equal(lanes["adjudication"]["status"], "OPEN"))
    incidents = lanes["incidents"].filter(pc.is_null(lanes["incidents"]["resolution"]))
    return pa.concat_tables([
        pa.table({"trace_id": queued["trace_id"],
                  "task": pa.repeat(pa.scalar("adjudication"), queued.num_rows),
                  "adjudicates": queued["task"], "reason": queued["reason"]},
                 schema=FOLLOW_UP_SCHEMA),
        pa.table({"trace_id": incidents["trace_id"],
                  "task": pa.repeat(pa.scalar("incident"), incidents.num_rows),
                  "adjudicates": pa.nulls(incidents.num_rows, pa.string()),
                  "reason": incidents["reason"]}, schema=FOLLOW_UP_SCHEMA)])


FOLLOW_UP_QUEUE = {"adjudication": "ADJUDICATION", "incident": "INCIDENT_REVIEW"}


def export_follow_ups(context: dg.AssetExecutionContext, pipeline: PipelineResource,
                      redacted_traces: PartitionBatches, follow_ups: pa.Table) -> dict[str, int]:
    """exports/follow_up_tasks/<day>/label_studio_tasks.json: the day's open adjudications and
    incidents as Label Studio tasks (built from redacted traces like every review task, and
    residue-scanned the same way; withheld if the scan finds anything). The file is replaced on
    every run and removed when nothing is open, so a closed item is never sent out again."""
    storage = pipeline.storage
    target = storage.exports_dir / "follow_up_tasks" / context.partition_key / IMPORT_FILE
    shared = target.with_name(RUBRIC_FILE)
    if not follow_ups.num_rows:
        target.unlink(missing_ok=True)
        shared.unlink(missing_ok=True)
        return {}
    rubric = pipeline.rubric()
    follow_ups = follow_ups.group_by(["trace_id", "task"], use_threads=False).aggregate(
        [("adjudicates", "first"), ("reason", "first")]).rename_columns(
        ["trace_id", "task", "adjudicates", "reason"])
    primary = pa.table({"trace_id": follow_ups["trace_id"],
                        "queue": pa.array([FOLLOW_UP_QUEUE[t] for t in
                                           follow_ups["task"].to_pylist()], pa.string()),
                        "task": follow_ups["task"]})
    columns = [c for c in TASK_TRACE_COLUMNS if c in redacted_traces.schema.names]
    wanted = primary["trace_id"].combine_chunks()
    parts = []
    for batch in redacted_traces.iter_batches(TASK_BATCH_ROWS, columns=columns):
        own = batch.filter(pc.is_in(batch.column("trace_id"), value_set=wanted))
        if own.num_rows:  # a few thousand of a day's traces: build only theirs
            parts.append(build_task_table(own, primary, rubric.version, rubric.policy_text))
    tasks = pa.concat_tables([TASK_SCHEMA.empty_table(), *parts])
    slot = pc.index_in(pc.binary_join_element_wise(tasks["trace_id"], tasks["task"], ":"),
                       value_set=pc.binary_join_element_wise(follow_ups["trace_id"],
                                                             follow_ups["task"], ":"))
    reason = pc.take(follow_ups["reason"], slot)
    is_adjudication = pc.equal(tasks["task"], "adjudication")
    tasks = tasks.append_column("adjudicates", pc.take(follow_ups["adjudicates"], slot))
    tasks = tasks.append_column("adjudication_reason",
                                pc.if_else(is_adjudication, reason, pa.scalar(None, pa.string())))
    tasks = tasks.append_column("incident_reason",
                                pc.if_else(is_adjudication, pa.scalar(None, pa.string()), reason))
    offending, _ = residue_in_table(tasks, FOLLOW_UP_TASK_TEXTS, tuple(pipeline.deny_terms()))
    if offending:
        context.log.error(f"{len(offending)} follow-up task(s) failed the residue scan; "
                          "follow-up export withheld")
        target.unlink(missing_ok=True)
        return {}
    storage.write_text(target, "[\n" + ",\n".join(import_task_json(tasks, TASK_DATA_FIELDS))
                       + "\n]\n")
    storage.write_text(shared, shared_text_json(rubric.version, rubric.policy_text))
    return {str(k): int(v) for k, v in
            ((i["values"], i["counts"]) for i in pc.value_counts(tasks["task"]).to_pylist())}


LANE_OF_OUTPUT = {"reviewed_labels": "labels", "preference_pairs": "preference_pairs",
                  "demonstrations": "demonstrations", "pointwise_assessments": "pointwise",
                  "adjudication_queue": "adjudication", "incident_records": "incidents"}
LANES = {
    "reviewed_labels": "Every valid review with its rubric-derived outcome and status.",
    "preference_pairs": "Accepted prompt/chosen/rejected pairs with full provenance.",
    "demonstrations": "Approved and corrected answers for supervised fine-tuning.",
    "pointwise_assessments": "Single-answer labels and 1-5 scores.",
    "adjudication_queue": "Disagreements, ties and rubric conflicts awaiting adjudication.",
    "incident_records": "BOTH_BAD pairs and unsafe traces, with the reason.",
}


def round_ledger(storage: Storage, day: str) -> pa.Table:
    """trace_id -> (round_id, arm) for the day's traces, whichever day's round issued them."""
    scan = storage.scan_sql(WAREHOUSE, "selected_batch")
    if scan is None:
        return pa.table({c: pa.array([], pa.string()) for c in LEDGER_COLUMNS})
    return storage.query("SELECT trace_id, round_id, arm FROM {t} WHERE trace_day = "
                         f"'{day}'", t=scan).cast(pa.schema([(c, pa.string())
                                                             for c in LEDGER_COLUMNS]))


def with_round(batch: pa.RecordBatch, ledger: pa.Table, issued: FirstPositions) -> pa.Table:
    """A trace batch with the round and arm that issued each trace (null: never issued).
    `issued` is FirstPositions of the ledger's trace ids, built once for every batch of the
    day."""
    table = pa.Table.from_batches([batch])
    for name in ("round_id", "arm"):
        table = table.append_column(name, issued.take(ledger[name], batch.column("trace_id")))
    return table


LEDGER_COLUMNS = ("trace_id", "round_id", "arm")


@dg.multi_asset(
    outs={
        **{name: dg.AssetOut(io_manager_key=WAREHOUSE_IO, kinds={"parquet"}, description=desc)
           for name, desc in LANES.items()},
        "review_quarantine": dg.AssetOut(io_manager_key=RESTRICTED_IO, kinds={"parquet"},
                                         description="Reviews that could not be used, with "
                                         "the reason (restricted zone)."),
    },
    partitions_def=daily_partitions,
    group_name="review",
    can_subset=False,
    ins=QUEUE_IDS,
    deps=["selected_batch"],
)
def reviewed_labels(context: dg.AssetExecutionContext, pipeline: PipelineResource,
                    keys: KeysResource, redacted_traces: PartitionBatches,
                    routed_queues: pd.DataFrame):
    """Resolves the day one batch of traces at a time (each trace's reviews travel with
    it); every lane is spooled to disk and then streamed into its table."""
    storage = pipeline.storage
    rubrics = {v: pipeline.rubric(v) for v in pipeline.known_rubrics()}
    pseudonym_key = keys.reviewer_pseudonym_key()
    adjudicators = adjudicator_pseudonyms(pipeline.reviewer_roles(), pseudonym_key)
    spools = {lane: storage.spool(WAREHOUSE, schema) for lane, schema in LANE_SCHEMAS.items()}
    statuses: dict[str, int] = {}
    redelivered = 0  # identical repeats of a review_id, dropped (core.review.one_review_per_id)
    follow_ups: list[pa.Table] = []
    with tempfile.TemporaryDirectory(prefix="reviews-") as scratch:
        reviews = SpooledReviews(redacted_traces.to_arrow(["trace_id"])["trace_id"],
                                 Path(scratch), group_rows=REVIEW_GROUP_TRACES)
        quarantined, elsewhere = _load_reviews(pipeline, pseudonym_key, context.partition_key,
                                               reviews)
        ledger = round_ledger(storage, context.partition_key).combine_chunks()
        issued = FirstPositions(ledger["trace_id"])
        traces = (with_round(batch, ledger, issued) for batch in
                  redacted_traces.iter_batches(RESOLVE_BATCH_ROWS, columns=TRACE_COLUMNS))
        for resolved in resolve_review_batches(
                reviews, traces,
                routed_queues,
                pipeline.rubric(), rubric_by_version=rubrics, adjudicators=adjudicators,
                workers=pipeline.workers):
            for lane, spool in spools.items():
                spool.write(resolved.lanes[lane])
            follow_ups.append(open_follow_ups(resolved.lanes))
            quarantined.extend(resolved.quarantine)
            redelivered += resolved.redelivered
            for item in pc.value_counts(resolved.lanes["labels"]["status"]).to_pylist():
                statuses[item["values"]] = statuses.get(item["values"], 0) + item["counts"]
        del reviews
    quarantine = quarantine_to_table(quarantined)
    for name, lane in LANE_OF_OUTPUT.items():
        metadata = {}
        if name == "reviewed_labels":
            if statuses:
                metadata["by_status"] = counts_table(statuses, "status")
            metadata["repeated_reviews_dropped"] = redelivered
            metadata["reviews_landed_for_other_days"] = (
                counts_table(elsewhere, "trace day") if elsewhere
                else dg.MetadataValue.md("none"))
        yield dg.Output(spools[lane].stream(), output_name=name, metadata=metadata)
    if redelivered:
        context.log.info(f"{redelivered} review(s) delivered again with identical content "
                         "(same review_id and trace) were dropped; one of each is kept")
    pending = export_follow_ups(context, pipeline, redacted_traces,
                                pa.concat_tables([FOLLOW_UP_SCHEMA.empty_table(), *follow_ups]))
    context.log.info(f"follow-up tasks for Label Studio: {pending or 'none'}")
    reasons = value_counts(pd.Series([reason_category(r)
                                      for r in quarantine.column("reason").to_pylist()],
                                     dtype=object))
    yield dg.Output(quarantine, output_name="review_quarantine",
                    metadata={"dagster/row_count": quarantine.num_rows,
                              "reasons": counts_table(reasons, "reason") if reasons
                              else dg.MetadataValue.md("none")})
