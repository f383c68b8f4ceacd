"""dataset_manifest (the release candidate and its gates) and dataset_release (the promotion).

The manifest asset gathers a window's accepted rows with DuckDB, adds the parent release's rows,
and evaluates every promotion gate as a blocking asset check. dataset_release runs only when all
gates pass, and writes an immutable releases/<dataset_version>/.
"""


import functools
import json
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa

from feedback_pipeline import settings
from feedback_pipeline.core import agreement
from feedback_pipeline.core.candidate import (
    LANE_SELECT,
    LANES,
    sql_escaped,
    training_sql,
    write_candidate,
)
from feedback_pipeline.core.contract import id_list, reason_category
from feedback_pipeline.core.leakage import find_leaks, find_near_duplicates
from feedback_pipeline.core.manifest import (
    Gate,
    GoldAnswer,
    QuarantineCount,
    next_version,
    reviewer_standing,
    suspended,
)
from feedback_pipeline.core.release import (
    RELEASE_FILES,
    ReleaseDecision,
    ReleaseEvidence,
    ReleaseExistsError,
    agreement_gate,
    content_fingerprint,
    dataset_card,
    decide_release,
    slice_agreement_gate,
    verify_release_dir,
)
from feedback_pipeline.core.review import unsafe_pairs_in_parquet
from feedback_pipeline.core.runtime import (
    release_free_memory,
    stop_workers,
    submit_sequence,
)
from feedback_pipeline.core.signing import sign_manifest
from feedback_pipeline.core.texts import (
    RELEASE_TEXTS,
    REVIEW_TASK_TEXTS,
    residue_in_parquet,
)
from feedback_pipeline.provenance import code_version
from feedback_pipeline.resources import KeysResource, PipelineResource
from feedback_pipeline.stages.common import write_confusion_heatmap
from feedback_pipeline.storage import RESTRICTED, WAREHOUSE, Storage, arrow_target

GATE_CHECKS = {
    "redaction_residue": "No raw identifier or secret in any released or reviewer-facing text.",
    "evaluation_leakage": "No training row shares an id or a normalised prompt with the frozen "
                          "evaluation set.",
    "agreement_gate": "The declared agreement statistic reaches the declared gate.",
    "unsafe_pairs_accepted": "No accepted pair has a chosen answer marked unsafe.",
    "manifest_complete": "The manifest has every field the seed requires.",
    "quarantine_share": "No table quarantined more than the declared share of its lines "
                        "(max_quarantined_share).",
    "parent_release_verified": "The parent release's files match its manifest and its "
                               "signature holds; a release is only built on one that does.",
    "slice_agreement": "Each slice declared in slice_gates (action block) reaches its "
                       "agreement gate on enough items.",
}
QUARANTINED_TABLES = {"traces": ("trace_quarantine", "raw_traces"),
                      "reviews": ("review_quarantine", "reviewed_labels")}
"""What the quarantine gate weighs: each quarantine table against the table of lines kept."""
CANDIDATE_DIR = ("release_candidate",)
HEATMAP = "agreement_confusion_matrix.png"
ROUTED_SLICES = "slices_routed_to_adjudication.json"
"""In the candidate folder: slice -> the window's trace ids in a slice whose gate routes it to
adjudication (the manifest carries only their number)."""


DUCKDB_MEMORY = "768MB"
LEAK_BATCH_ROWS = 65_536  # the candidate's sort spills to disk beyond this
LABEL_BATCH_ROWS = 50_000
SCAN_IN_WORKER_ROWS = 100_000  # candidate rows from which the content scans run in a worker


class ReleaseWindow(dg.Config):
    """The days a release covers (inclusive); default: every day with landed traces."""

    start: str | None = None
    end: str | None = None
    scan_in_worker_rows: int = SCAN_IN_WORKER_ROWS
    """Candidate rows from which the content scans run in a worker process (0: always)."""


def read_window(storage: Storage, table: str, days: list[str],
                columns: list[str]) -> pd.DataFrame:
    """Some columns of every partition of one warehouse table in the window, through DuckDB."""
    scan = storage.scan_sql(WAREHOUSE, table, days)
    if scan is None:
        return pd.DataFrame(columns=columns)
    return storage.query(f"SELECT {', '.join(columns)} FROM {{t}}", t=scan).to_pandas()


def window_quarantine(storage: Storage, days: list[str]) -> dict[str, QuarantineCount]:
    """Quarantined and kept lines per landed kind over the window, the quarantine grouped by
    reason category (never the reasons' particulars). Read from the restricted zone; only
    the counts leave it."""
    counts = {}
    for kind, (quarantine, kept) in QUARANTINED_TABLES.items():
        zone = RESTRICTED if storage.scan_sql(RESTRICTED, kept, days) else WAREHOUSE
        kept_scan = storage.scan_sql(zone, kept, days)
        kept_rows = int(storage.query("SELECT count(*) AS n FROM {t}", t=kept_scan)
                        .column("n")[0].as_py()) if kept_scan else 0
        scan = storage.scan_sql(RESTRICTED, quarantine, days)
        reasons: dict[str, int] = {}
        if scan:
            grouped = storage.query("SELECT reason, count(*) AS n FROM {t} GROUP BY reason",
                                    t=scan)
            for reason, n in zip(grouped["reason"].to_pylist(), grouped["n"].to_pylist(),
                                 strict=True):
                category = reason_category(reason or "")
                reasons[category] = reasons.get(category, 0) + int(n)
        counts[kind] = QuarantineCount(sum(reasons.values()), kept_rows, reasons)
    return counts


def parent_verification(storage: Storage, keys: KeysResource, parent: str | None) -> Gate:
    """The parent release re-hashed and its signature checked before any of its rows are
    inherited: a tampered or unsigned parent refuses promotion (and is not built on)."""
    if parent is None:
        return Gate("parent_release_verified", True, 0, GATE_CHECKS["parent_release_verified"])
    problems = verify_release_dir(storage.release_dir(parent),
                                  keys.trusted_keys(keys.signing_key_value()))
    return Gate("parent_release_verified", not problems, len(problems),
                GATE_CHECKS["parent_release_verified"], offending=[parent] if problems else [],
                reason=f"{parent}: " + "; ".join(problems) if problems else None)


def parent_sources(storage: Storage, parent: str | None) -> dict[str, str | None]:
    """DuckDB FROM-clauses over the parent release's lane files (None where there is none)."""
    if parent is None:
        return {}
    folder = storage.release_dir(parent)
    return {lane: _parquet(folder / name) if (folder / name).exists() else None
            for lane, name in RELEASE_FILES.items()}


def jsonl_name(parquet_name: str) -> str:
    """The JSON Lines twin of a release file (policy `release_jsonl`)."""
    return parquet_name.removesuffix(".parquet") + ".jsonl"


def _parquet(path: Any) -> str:
    return f"read_parquet('{sql_escaped(str(path))}')"




def residue_scans(storage: Storage, files: dict[str, Path], days: list[str],
                  deny_terms: list[str]) -> list[Callable[[], list[str]]]:
    """core.texts.residue_in_parquet calls: every candidate lane file and every review-task
    partition of the window (tasks keyed by trace id, as the gate reports them)."""
    terms = tuple(deny_terms)
    calls = [functools.partial(residue_in_parquet, str(path), layout=RELEASE_TEXTS[lane],
                               deny_terms=terms) for lane, path in files.items()]
    task_layout = replace(REVIEW_TASK_TEXTS, id_field="trace_id")
    for day in storage.table_days(WAREHOUSE, "review_tasks"):
        if day in days:
            source, filesystem = arrow_target(storage.batches(WAREHOUSE, "review_tasks",
                                                              day).path)
            calls.append(functools.partial(residue_in_parquet, source, layout=task_layout,
                                           deny_terms=terms, filesystem=filesystem))
    return calls


def window_pairwise_input(storage: Storage, scan: str | None) -> pd.DataFrame:
    """The window's pairwise reviews for the agreement gate, streamed from DuckDB in scan
    order (core.agreement.pairwise_input_streamed)."""
    if scan is None:
        return agreement.pairwise_input(
            pa.table({c: pa.array([], pa.string()) for c in agreement.LABEL_COLUMNS}))
    keys = storage.query(f"SELECT {', '.join(agreement.KEY_COLUMNS)} FROM {{t}} "
                         "WHERE task = 'pairwise'", t=scan)
    with storage.connect() as con:
        reader = con.sql(f"SELECT {', '.join(agreement.LABEL_COLUMNS)} FROM {scan} "
                         "WHERE task = 'pairwise'").fetch_record_batch(LABEL_BATCH_ROWS)
        return agreement.pairwise_input_streamed(keys, reader)


def window_gold_answers(storage: Storage, scan: str | None, gold: list[dict]
                        ) -> list[GoldAnswer]:
    """The window's pairwise answers on gold traces, with reviewed_at, as the gold check
    counts them (core.agreement.gold_answers): the reviewer-standing rule's input."""
    if scan is None or not gold:
        return []
    ids = pa.table({"trace_id": pa.array(sorted({str(g["trace_id"]) for g in gold}),
                                         pa.string())})
    with storage.connect() as con:
        con.register("gold_ids", ids)
        rows = con.sql(f"SELECT review_id, trace_id, reviewer_id, outcome AS label, reviewed_at "
                       f"FROM {scan} SEMI JOIN gold_ids USING (trace_id) "
                       f"WHERE task = 'pairwise' AND coalesce(status, '') <> "
                       f"'{agreement.NOT_A_VOTE}'").to_arrow_table().to_pandas()
    answers = agreement.gold_answers(rows, pd.DataFrame(gold))
    return [GoldAnswer(str(r.reviewer_id),
                       None if pd.isna(r.reviewed_at) else r.reviewed_at.to_pydatetime(),
                       bool(r.miss)) for r in answers.itertuples(index=False)]


def parent_standing(storage: Storage, parent: str | None) -> dict[str, dict]:
    """The parent release's reviewer_standing (empty without a parent or the field)."""
    if parent is None:
        return {}
    path = storage.release_dir(parent) / "manifest.json"
    if not path.exists():
        return {}
    return dict(json.loads(path.read_text(encoding="utf-8")).get("reviewer_standing") or {})


def _rests_on(reviewers: list[str]) -> str:
    """SQL: the row's reviewer_ids (comma-joined pseudonyms) name one of `reviewers`."""
    names = ", ".join(f"'{sql_escaped(r)}'" for r in reviewers)
    return f"list_has_any(string_split(coalesce(reviewer_ids, ''), ','), [{names}])"


def without_reviewers(sources: dict[str, str | None], reviewers: list[str]
                      ) -> dict[str, str | None]:
    """Each lane's FROM-clause with every row resting on a label of `reviewers` left out (a
    row whose reviewer_ids name one of them, even alongside others: the row is not re-resolved
    without that label)."""
    if not reviewers:
        return dict(sources)
    return {lane: None if source is None else
            f"(SELECT * FROM {source} WHERE NOT {_rests_on(reviewers)})"
            for lane, source in sources.items()}


def without_traces(con: Any, sources: dict[str, str | None], trace_ids: Iterable[str],
                   name: str) -> tuple[dict[str, str | None], dict[str, int]]:
    """Each lane's FROM-clause with the rows of `trace_ids` left out (registered in `con` as
    table `name`), and per lane how many rows that holds back."""
    ids = sorted(set(trace_ids))
    if not ids:
        return dict(sources), {lane: 0 for lane in LANES}
    con.register(name, pa.table({"trace_id": pa.array(ids, pa.string())}))
    held = {lane: int(con.execute(f"SELECT count(*) FROM {source} SEMI JOIN {name} "
                                  "USING (trace_id)").fetchall()[0][0]) if source else 0
            for lane, source in sources.items()}
    return {lane: None if source is None else
            f"(SELECT * FROM {source} ANTI JOIN {name} USING (trace_id))"
            for lane, source in sources.items()}, held


def rows_resting_on(con: Any, window: dict[str, str | None], parent: dict[str, str | None],
                    reviewers: list[str], retracted: set[str]) -> dict[str, int]:
    """Per lane, the distinct release rows (window or inherited, retractions aside) that rest
    on a label of `reviewers`: what the suspension leaves out of the release."""
    return {lane: total for lane, (total, _inherited) in
            left_out_by_suspension(con, window, parent, reviewers, retracted).items()}


def left_out_by_suspension(con: Any, window: dict[str, str | None],
                           parent: dict[str, str | None], reviewers: list[str],
                           retracted: set[str]) -> dict[str, tuple[int, int]]:
    """Per lane, (all rows, inherited rows) resting on a label of `reviewers`, distinct and
    retractions aside; one pass over each lane's sources."""
    out = {lane: (0, 0) for lane in LANES}
    if not reviewers:
        return out
    con.register("suspension_retracted",
                 pa.table({"trace_id": pa.array(sorted(retracted), pa.string())}))
    for lane in LANES:
        parts = []
        if window.get(lane):
            parts.append(f"SELECT row_id, trace_id, false AS inherited FROM (SELECT "
                         f"{LANE_SELECT[lane]} FROM {window[lane]} WHERE {_rests_on(reviewers)})")
        if parent.get(lane):
            parts.append(f"SELECT row_id, trace_id, true AS inherited FROM {parent[lane]} "
                         f"WHERE {_rests_on(reviewers)}")
        if parts:
            total, inherited = con.execute(
                "SELECT count(DISTINCT row_id), count(DISTINCT row_id) FILTER (WHERE inherited) "
                f"FROM ({' UNION ALL '.join(parts)}) "
                "ANTI JOIN suspension_retracted USING (trace_id)").fetchall()[0]
            out[lane] = (int(total), int(inherited))
    return out


@dg.asset(
    deps=["preference_pairs", "demonstrations", "pointwise_assessments", "reviewed_labels",
          "trace_quarantine", "review_quarantine",
          "incident_records", "adjudication_queue", "review_tasks", "frozen_evaluation_set"],
    group_name="release",
    kinds={"json"},
    description="The release candidate for a window: cumulative rows, manifest, and every "
                "promotion gate as a blocking check.",
    check_specs=[dg.AssetCheckSpec(name, asset="dataset_manifest", blocking=True, description=d)
                 for name, d in GATE_CHECKS.items()],
)
def dataset_manifest(context: dg.AssetExecutionContext, config: ReleaseWindow,
                     pipeline: PipelineResource, keys: KeysResource):
    """Load (the window, its parent, its reviews), measure (the candidate in DuckDB, the
    scans), decide (core.release.decide_release), write the candidate and its manifest, and
    report each gate as a blocking check."""
    storage, policy = pipeline.storage, pipeline.policy
    scan_in_worker_rows = config.scan_in_worker_rows
    days = storage.window_days(config.start, config.end)
    on_disk = storage.list_versions()
    version, parent = next_version(on_disk, policy.dataset_name, policy.parent_dataset)
    # a declared parent made outside this data root sets the numbering only: none of its rows
    # are here to inherit or verify
    local_parent = parent if parent in on_disk else None
    parent_gate = parent_verification(storage, keys, local_parent)
    inherited = local_parent if parent_gate.passed else None
    retracted = settings.load_retractions(storage)
    frozen = pipeline.frozen_set()
    scan = storage.scan_sql(WAREHOUSE, "reviewed_labels", days)
    # the agreement gate first, on its own: its reviews are freed before DuckDB builds the
    # candidate, so the two never hold memory at the same time
    gold = pipeline.gold()
    reviews = window_pairwise_input(storage, scan)
    agree_gate, agreement_record, report = agreement_gate(reviews, gold, policy)
    slices_gate, routed, routed_ids = slice_agreement_gate(report, reviews, policy)
    del reviews
    release_free_memory()
    # reviewer standing: a reviewer the gold check flags is suspended until they requalify,
    # and no release row resting on a suspended reviewer's label is released
    standing = reviewer_standing(agreement_record["flagged_reviewers"],
                                 window_gold_answers(storage, scan, gold),
                                 parent_standing(storage, inherited), policy.suspension)
    barred = suspended(standing)
    window_sources = {lane: storage.scan_sql(WAREHOUSE, table, days)
                      for lane, table in WINDOW_TABLES.items()}
    inherited_sources = parent_sources(storage, inherited)
    with tempfile.TemporaryDirectory() as scratch, storage.connect() as con:
        con.execute(f"SET temp_directory = '{Path(scratch) / 'spill'}'")
        con.execute(f"SET memory_limit = '{DUCKDB_MEMORY}'")
        # every lane is written with an explicit ORDER BY, so DuckDB need not also buffer rows
        # to keep their scan order (with it, a window whose parent release already holds a
        # 10^6-trace day ran out of the memory limit)
        con.execute("SET preserve_insertion_order = false")
        by_source = left_out_by_suspension(con, window_sources, inherited_sources, barred,
                                           retracted)
        left_out = {lane: total for lane, (total, _) in by_source.items()}
        inherited_left_out = {lane: inherited for lane, (_, inherited) in by_source.items()}
        # a slice under an "adjudicate" gate: its window rows wait for expert adjudication
        # (their trace ids in ROUTED_SLICES) instead of being released on doubtful labels
        fresh_sources, held_for_slices = without_traces(
            con, without_reviewers(window_sources, barred),
            (tid for ids in routed_ids.values() for tid in ids), "slice_held")
        candidate = write_candidate(
            con, fresh_sources,
            without_reviewers(inherited_sources, barred), version, retracted, Path(scratch))
        files = candidate.files
        training = training_sql({lane: _parquet(files[lane]) for lane in LANES})
        conflicts = int(storage.query("SELECT count(*) AS n FROM {t} WHERE status = "
                                      "'RUBRIC_CONFLICT'", t=scan).column("n")[0].as_py()
                        ) if scan else 0
        incidents = read_window(storage, "incident_records", days, ["reason"])
        adjudication = read_window(storage, "adjudication_queue", days, ["reason"])
        # the residue and unsafe-pair scans read every row's text: one worker process runs
        # them while this process (two threads) looks for near-duplicates. They run here
        # first on a small candidate (a worker takes about a second to start) and on an
        # object store (a worker may not reach this process's filesystem object: an in-memory
        # store is only in this process)
        in_worker = not storage.remote and sum(candidate.rows.values()) >= scan_in_worker_rows
        scans = submit_sequence(
            [*residue_scans(storage, files, days, pipeline.deny_terms()),
             functools.partial(unsafe_pairs_in_parquet, files["preference"],
                               rubric=pipeline.rubric())],
            pipeline.workers if in_worker else 1)
        try:
            frozen_rows = storage.prompt_fingerprints(list(frozen.ids))
            leaks = pd.concat([
                find_leaks(f"({training})", frozen_rows),
                find_near_duplicates(con.sql(training).fetch_record_batch(LEAK_BATCH_ROWS),
                                     frozen_rows, policy.near_duplicate_threshold),
            ], ignore_index=True)
        finally:  # the scans read files in `scratch`: never leave it under them
            futures.wait([scans])
        *residue_found, unsafe = scans.result()
        stop_workers()  # this step writes no IO-managed output, so its workers stop here
        folder = storage.path(WAREHOUSE, CANDIDATE_DIR[0])
        jsonl_files = write_candidate_files(con, storage, folder, files, Path(scratch),
                                            policy.release_jsonl)
        write_confusion_heatmap(report, path=Path(scratch) / HEATMAP)
        storage.write_bytes(folder / HEATMAP, (Path(scratch) / HEATMAP).read_bytes())
        storage.write_json(folder / ROUTED_SLICES, routed_ids)

    decision = decide_release(ReleaseEvidence(
        version=version, parent=parent, days=days, parent_gate=parent_gate,
        agreement_gate=agree_gate, agreement_record=agreement_record, slice_gate=slices_gate,
        slices_routed=routed, standing=standing, suspended=barred, rows=candidate.rows,
        new_rows=candidate.new_rows, retracted_rows=candidate.retracted_rows,
        has_changes=candidate.has_changes, left_out_by_suspension=left_out,
        inherited_left_out=inherited_left_out, held_for_slices=held_for_slices,
        rubric_conflicts=conflicts,
        incident_reasons=incidents["reason"].astype(str).tolist() if not incidents.empty else [],
        adjudication_reasons=adjudication["reason"].astype(str).tolist()
        if not adjudication.empty else [],
        review_cost=review_cost(storage, scan, days), frozen_set_id=frozen.set_id,
        frozen_set_size=len(frozen.ids), leaks=leaks,
        near_duplicate_threshold=policy.near_duplicate_threshold, unsafe_pairs=unsafe,
        residue_found=residue_found, quarantine=window_quarantine(storage, days),
        run_id=context.run.run_id, code_version=code_version(),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"), jsonl_files=jsonl_files),
        policy)
    manifest = decision.manifest
    storage.write_json(folder / "manifest.json", manifest)
    yield from report_decision(decision)


def write_candidate_files(con: Any, storage: Storage, folder: Any, files: dict[str, Path],
                          scratch: Path, jsonl: bool) -> list[str]:
    """Copy the candidate's lane files into the candidate folder (and, with `release_jsonl`,
    each as JSON Lines beside it); the JSON Lines file names."""
    names = []
    for lane, path in files.items():
        storage.write_bytes(folder / RELEASE_FILES[lane], path.read_bytes())
        if jsonl:
            name = jsonl_name(RELEASE_FILES[lane])
            con.execute(f"COPY (SELECT * FROM {_parquet(path)}) TO "
                        f"'{sql_escaped(str(scratch / name))}' (FORMAT json)")
            storage.write_bytes(folder / name, (scratch / name).read_bytes())
            names.append(name)
    return names


def report_decision(decision: ReleaseDecision) -> Iterator[dg.MaterializeResult
                                                         | dg.AssetCheckResult]:
    """The decision as the UI shows it: headline figures and one blocking check per gate."""
    manifest = decision.manifest
    rows, cost = manifest["row_counts"], manifest["review_cost"]
    agreement_value = manifest["agreement_report"]["value"]
    yield dg.MaterializeResult(metadata={
        "dataset_version": manifest["dataset_version"],
        "parent_dataset": manifest["parent_dataset"] or "none",
        "source_window": manifest["source_window"] or "empty",
        "preferences": rows["preferences"],
        "demonstrations": rows["demonstrations"],
        "pointwise": rows["pointwise"],
        "new_rows": sum(rows["new"].values()),
        "promotion_reasons": ", ".join(manifest["promotion_reasons"]) or "none",
        "agreement": agreement_value if agreement_value is not None else -1.0,
        "review_seconds_per_accepted_label": cost["seconds_per_accepted_label"]
        if cost["seconds_per_accepted_label"] is not None else -1.0,
    })
    for gate in decision.gates:
        yield dg.AssetCheckResult(
            check_name=gate.name,
            passed=gate.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"value": dg.MetadataValue.text(json.dumps(gate.value)),
                      "rule": gate.rule,
                      "reason": gate.reason or "passed",
                      "offending_ids": id_list(gate.offending)},
        )


def review_cost(storage: Storage, labels_scan: str | None, days: list[str]) -> dict[str, Any]:
    """Reviewer time the window's accepted labels cost, overall and per arm of the rounds
    ("daily work": a round's demonstration, pointwise and incident tasks): every review's
    seconds (accepted or not: a disagreement costs time too) over the labels accepted into
    training (preference pairs, reviewer demonstrations, pointwise rows)."""
    group = ("coalesce(arm, CASE WHEN round_id IS NULL THEN 'outside rounds' "
             "ELSE 'daily work' END)")
    accepted_sql = " UNION ALL ".join(
        f"SELECT {group} AS arm FROM {scan}" + (" WHERE source = 'reviewer_answer'"
                                                 if table == "demonstrations" else "")
        for table in ("preference_pairs", "demonstrations", "pointwise_assessments")
        if (scan := storage.scan_sql(WAREHOUSE, table, days)) is not None)
    if labels_scan is None or not accepted_sql:
        return {"review_seconds": None, "reviews_timed": 0, "accepted_labels": 0,
                "seconds_per_accepted_label": None, "by_arm": {}}
    with storage.connect() as con:
        rows = con.execute(f"""
            WITH spent AS (SELECT {group} AS arm, sum(review_seconds) AS seconds,
                                  count(review_seconds) AS timed, count(*) AS reviews
                           FROM {labels_scan} GROUP BY 1),
                 accepted AS (SELECT arm, count(*) AS accepted FROM ({accepted_sql}) GROUP BY 1)
            SELECT arm, coalesce(accepted, 0), seconds, coalesce(timed, 0), coalesce(reviews, 0)
            FROM spent FULL JOIN accepted USING (arm) ORDER BY arm""").fetchall()

    def per_label(seconds: float | None, timed: int, accepted: int) -> float | None:
        return round(seconds / accepted, 1) if timed and accepted and seconds is not None \
            else None

    by_arm = {arm: {"accepted_labels": int(accepted), "reviews": int(reviews),
                    "reviews_timed": int(timed),
                    "review_seconds": None if not timed else round(float(seconds), 1),
                    "seconds_per_accepted_label": per_label(seconds, timed, accepted)}
              for arm, accepted, seconds, timed, reviews in rows}
    timed = sum(v["reviews_timed"] for v in by_arm.values())
    seconds = sum(v["review_seconds"] or 0.0 for v in by_arm.values())
    accepted = sum(v["accepted_labels"] for v in by_arm.values())
    return {"review_seconds": round(seconds, 1) if timed else None, "reviews_timed": timed,
            "accepted_labels": accepted,
            "seconds_per_accepted_label": per_label(seconds, timed, accepted),
            "by_arm": by_arm}


WINDOW_TABLES = {"preference": "preference_pairs", "sft": "demonstrations",
                 "unpaired": "pointwise_assessments"}

@dg.asset(
    deps=["dataset_manifest"],
    group_name="release",
    kinds={"json"},
    description="Promotes the candidate to an immutable releases/<dataset_version>/ when every "
                "gate passed; with no new rows it writes nothing.",
)
def dataset_release(context: dg.AssetExecutionContext, pipeline: PipelineResource,
                    keys: KeysResource) -> dg.MaterializeResult:
    storage = pipeline.storage
    folder = storage.path(WAREHOUSE, CANDIDATE_DIR[0])
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    if manifest["promotion_reasons"]:
        raise dg.Failure(description="promotion refused: " +
                         "; ".join(manifest["promotion_reasons"]))
    version = manifest["dataset_version"]
    if not manifest["has_changes"]:
        context.log.info(f"no new or retracted rows; {manifest['parent_dataset']} stands")
        return dg.MaterializeResult(metadata={"promoted": False,
                                              "dataset_version": manifest["parent_dataset"]
                                              or "none"})
    files = {name: (folder / name).read_bytes()
             for name in (*RELEASE_FILES.values(), *manifest.get("jsonl_files", ()), HEATMAP)}
    present = dict(RELEASE_FILES)
    fingerprint = content_fingerprint({name: files[name] for name in present.values()})
    files["README.md"] = dataset_card(manifest, present, fingerprint).encode("utf-8")
    manifest["content_fingerprint"] = fingerprint
    key = keys.signing_key_value()
    try:
        path = storage.write_release(version, files, manifest,
                                     sign=lambda text: sign_manifest(text, key))
    except ReleaseExistsError as err:
        raise dg.Failure(description=str(err)) from err
    return dg.MaterializeResult(metadata={
        "promoted": True,
        "dataset_version": version,
        "path": dg.MetadataValue.path(storage.relative(path)),
    })


__all__ = ["LANES", "dataset_manifest", "dataset_release"]
