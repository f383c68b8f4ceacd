"""dataset_manifest (the release candidate and its gates) and dataset_release (the promotion).

The manifest asset gathers a window's accepted rows with DuckDB, adds the parent release's rows,
and evaluates every promotion gate as a blocking asset check. dataset_release runs only when all
gates pass, and writes an immutable releases/<dataset_version>/.
"""


import json
import subprocess
import tempfile
from collections.abc import Iterable
from concurrent import futures
from dataclasses import replace
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa

from feedback_pipeline.core import agreement
from feedback_pipeline.core.candidate import (
    LANE_SELECT,
    LANES,
    sql_escaped,
    training_sql,
    write_candidate,
)
from feedback_pipeline.core.contract import id_list, reason_category
from feedback_pipeline.core.leakage import find_leaks, find_near_duplicates, leaked_ids
from feedback_pipeline.core.manifest import (
    REQUIRED_FIELDS,
    Gate,
    GoldAnswer,
    QuarantineCount,
    missing_fields,
    next_version,
    promotion_reasons,
    quarantine_gate,
    reviewer_standing,
    slice_gate,
    suspended,
)
from feedback_pipeline.core.parallel import (
    release_free_memory,
    stage_workers,
    stop_workers,
    submit_sequence,
)
from feedback_pipeline.core.release import (
    RELEASE_FILES,
    ReleaseExistsError,
    content_fingerprint,
    dataset_card,
    verify_release_dir,
)
from feedback_pipeline.core.review import unsafe_pairs_in_parquet
from feedback_pipeline.core.signing import resolve_signing_key, sign_manifest, trusted_keys
from feedback_pipeline.core.texts import (
    RELEASE_TEXTS,
    REVIEW_TASK_TEXTS,
    TextLayout,
    residue_in_parquet,
)
from feedback_pipeline.resources import PipelineResource
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


class ReleaseWindow(dg.Config):
    """The days a release covers (inclusive); default: every day with landed traces."""

    start: str | None = None
    end: str | None = None


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


def parent_verification(storage: Storage, parent: str | None) -> Gate:
    """The parent release re-hashed and its signature checked before any of its rows are
    inherited: a tampered or unsigned parent refuses promotion (and is not built on)."""
    if parent is None:
        return Gate("parent_release_verified", True, 0, GATE_CHECKS["parent_release_verified"])
    key = resolve_signing_key(data_root=None if storage.remote else storage.root)
    problems = verify_release_dir(storage.release_dir(parent), trusted_keys(key))
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


def load_retractions(storage: Storage) -> set[str]:
    path = storage.config_path("retractions.txt")
    if not path.exists():
        return set()
    return {line.split("#")[0].strip() for line in path.read_text().splitlines()
            if line.split("#")[0].strip()}


def code_version() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, cwd=Path(__file__).parent, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{package_version('feedback-pipeline')}" + (f"+g{sha}" if sha else "")


DUCKDB_MEMORY = "768MB"
LEAK_BATCH_ROWS = 65_536  # the candidate's sort spills to disk beyond this
LABEL_BATCH_ROWS = 50_000
SCAN_IN_WORKER_ROWS = 100_000  # candidate rows from which the content scans run in a worker


def residue_scans(storage: Storage, files: dict[str, Path], days: list[str],
                  deny_terms: list[str]) -> list[tuple[Any, TextLayout, tuple[str, ...], Any]]:
    """core.texts.residue_in_parquet items: every candidate lane file and every review-task
    partition of the window (tasks keyed by trace id, as the gate reports them)."""
    terms = tuple(deny_terms)
    items = [(str(path), RELEASE_TEXTS[lane], terms, None) for lane, path in files.items()]
    task_layout = replace(REVIEW_TASK_TEXTS, id_field="trace_id")
    for day in storage.table_days(WAREHOUSE, "review_tasks"):
        if day in days:
            source, filesystem = arrow_target(storage.batches(WAREHOUSE, "review_tasks",
                                                              day).path)
            items.append((source, task_layout, terms, filesystem))
    return items


def residue_gate(offending_per_scan: Iterable[list[str]]) -> Gate:
    """The redaction_residue gate over the ids each scan found."""
    ids = sorted({tid for found in offending_per_scan for tid in found})
    return Gate("redaction_residue", not ids, len(ids),
                "independent residue scan over every training file and review task",
                offending=ids, reason=f"{len(ids)} row(s) hold raw identifiers" if ids else None)


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


def agreement_gate(reviews: pd.DataFrame, gold: list[dict],
                   policy: Any) -> tuple[Gate, dict, agreement.AgreementReport]:
    """The window's agreement over `reviews` (core.agreement.pairwise_input rows)."""
    report = agreement.agreement_report(
        reviews, gold=pd.DataFrame(gold) if gold else None,
        bootstrap=policy.bootstrap_samples, seed=policy.random_seed,
        min_items=policy.min_duplicate_items, gold_miss_prior=policy.gold_prior)
    value = agreement.gate_value(report, policy.agreement_statistic, policy.agreement_gate_on)
    summary = report.summary
    passed = value is not None and value >= policy.kappa_gate
    gated = summary.get("gated_statistic") or policy.agreement_statistic
    if value is None:
        reason = summary.get("insufficient_reason") or "too few duplicate reviews to measure"
    elif not passed:
        reason = f"{gated} {value:.3f} < gate {policy.kappa_gate}"
    else:
        reason = None
    record = {
        "statistic": policy.agreement_statistic,
        # the statistic the gate actually used and why, when the declared one is undefined for
        # the data (Cohen's kappa with more than two reviewers falls back to Conger's)
        "gated_statistic": gated,
        "gated_statistic_note": summary.get("gated_statistic_note"),
        "level": summary.get(f"{gated}_level", "nominal"),
        "sufficient": summary.get("sufficient"),
        "insufficient_reason": summary.get("insufficient_reason"),
        "ci_warning": summary.get("ci_warning"),
        "flagged_reviewers": report.by_reviewer.loc[report.by_reviewer["flagged"],
                                                    "reviewer_id"].tolist()
        if not report.by_reviewer.empty else [],
        "gate_on": policy.agreement_gate_on,
        "value": None if value is None else round(float(value), 4),
        "policy_gate": policy.kappa_gate,
        **{k: summary.get(k) for k in (
            "cohens_kappa", "cohens_kappa_note", "conger_kappa", "conger_kappa_ci_low",
            "conger_kappa_ci_high", "fleiss_kappa", "fleiss_kappa_ci_low", "fleiss_kappa_ci_high",
            "fleiss_kappa_method", "gwet_ac1", "observed_agreement", "chance_agreement",
            "kappa_ci_low", "kappa_ci_high", "krippendorff_alpha_nominal", "alpha_ordinal",
            "alpha_interval", "alpha_ratio", "n_items", "n_reviewers", "labels",
            "confusion_matrix", "kappa_method", "statistic_definitions")},
    }
    gate = Gate("agreement_gate", passed, record["value"],
                f"{gated} ({policy.agreement_gate_on}) >= {policy.kappa_gate}",
                reason=reason)
    return gate, record, report


def slice_agreement_gate(report: agreement.AgreementReport, reviews: pd.DataFrame,
                         policy: Any) -> tuple[Gate, dict[str, dict], dict[str, list[str]]]:
    """The declared slice gates (policy slice_gates) over the report's by_slice table:
    (gate, slices routed to adjudication with their trace count, their trace ids)."""
    slices = {str(r["slice"]): r for r in report.by_slice.to_dict("records")}
    ids: dict[str, list[str]] = {}
    if policy.slice_gates and not reviews.empty:
        named = reviews["slice"].astype(object).where(
            reviews["slice"].notna() & (reviews["slice"].astype(str) != ""), agreement.NO_SLICE)
        for name, group in reviews["trace_id"].astype(str).groupby(named.astype(str)):
            if name in policy.slice_gates:
                ids[name] = sorted(set(group))
    gate, routed = slice_gate(slices, policy.slice_gates, policy.agreement_statistic,
                              {name: len(v) for name, v in ids.items()})
    return gate, routed, {name: ids.get(name, []) for name in routed}


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
                     pipeline: PipelineResource):
    storage, policy = pipeline.storage, pipeline.policy
    days = storage.window_days(config.start, config.end)
    on_disk = storage.list_versions()
    version, parent = next_version(on_disk, policy.dataset_name, policy.parent_dataset)
    # a declared parent made outside this data root sets the numbering only: none of its rows
    # are here to inherit or verify
    local_parent = parent if parent in on_disk else None
    parent_gate = parent_verification(storage, local_parent)
    inherited = local_parent if parent_gate.passed else None
    retracted = load_retractions(storage)
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
        in_worker = not storage.remote and sum(candidate.rows.values()) >= SCAN_IN_WORKER_ROWS
        scans = submit_sequence(
            [*((residue_in_parquet, item)
               for item in residue_scans(storage, files, days, pipeline.deny_terms())),
             (unsafe_pairs_in_parquet, (files["preference"], pipeline.rubric()))],
            stage_workers() if in_worker else 1)
        try:
            frozen_rows = storage.prompt_fingerprints(list(frozen.ids))
            leaks = pd.concat([
                find_leaks(f"({training})", frozen_rows),
                find_near_duplicates(con.sql(training).fetch_record_batch(LEAK_BATCH_ROWS),
                                     frozen_rows, policy.near_duplicate_threshold),
            ], ignore_index=True)
        finally:  # the scans read files in `scratch`: never leave it under them
            futures.wait([scans])
        leak_gate = Gate("evaluation_leakage", leaks.empty, len(leaked_ids(leaks)),
                         "by id, by normalised prompt fingerprint, and by near-duplicate (word "
                         f"shingle Jaccard >= {policy.near_duplicate_threshold}) vs every "
                         "training row, parent rows included",
                         offending=leaked_ids(leaks),
                         reason="; ".join(f"{r.training_id} ({r.lane}) ~ {r.frozen_id} by "
                                          f"{r.rule}" for r in leaks.itertuples()) or None)
        *residue_found, unsafe = scans.result()
        stop_workers()  # this step writes no IO-managed output, so its workers stop here
        unsafe_gate = Gate("unsafe_pairs_accepted", not unsafe, len(unsafe),
                           "no chosen answer marked unsafe by its reviewers", offending=unsafe,
                           reason=f"chosen answer unsafe in {', '.join(unsafe)}" if unsafe
                           else None)
        residue = residue_gate(residue_found)
        folder = storage.path(WAREHOUSE, CANDIDATE_DIR[0])
        for lane, path in files.items():
            storage.write_bytes(folder / RELEASE_FILES[lane], path.read_bytes())
        jsonl_files = []
        if policy.release_jsonl:
            for lane, path in files.items():
                name = jsonl_name(RELEASE_FILES[lane])
                con.execute(f"COPY (SELECT * FROM {_parquet(path)}) TO "
                            f"'{sql_escaped(str(Path(scratch) / name))}' (FORMAT json)")
                storage.write_bytes(folder / name, (Path(scratch) / name).read_bytes())
                jsonl_files.append(name)
        write_confusion_heatmap(report, path=Path(scratch) / HEATMAP)
        storage.write_bytes(folder / HEATMAP, (Path(scratch) / HEATMAP).read_bytes())
        storage.write_json(folder / ROUTED_SLICES, routed_ids)

    both_bad = int(incidents["reason"].astype(str).str.startswith("BOTH_BAD").sum()) \
        if not incidents.empty else 0
    ties = int(adjudication["reason"].astype(str).str.startswith("tie").sum()) \
        if not adjudication.empty else 0
    cost = review_cost(storage, scan, days)
    manifest: dict[str, Any] = {
        "dataset_version": version,
        "dataset_name": policy.dataset_name,
        "source_window": f"{days[0]}/{days[-1]}" if days else None,
        "selection_policy_version": policy.selection_policy_version,
        "redaction_version": policy.redaction_version,
        "reidentification_access_rule": policy.reidentification_access_rule,
        "rubric_version": policy.rubric_version,
        "reviewer_training_set": policy.reviewer_training_set,
        "agreement_report": agreement_record,
        "row_counts": {
            "demonstrations": candidate.rows["sft"],
            "preferences": candidate.rows["preference"],
            "pointwise": candidate.rows["unpaired"],
            "ties": ties,
            "both_bad": both_bad,
            "rejected": conflicts,
            "adjudication": len(adjudication),
            "new": candidate.new_rows,
            "retracted": candidate.retracted_rows,
        },
        "review_cost": cost,
        "frozen_evaluation_set": frozen.set_id,
        "frozen_evaluation_set_size": len(frozen.ids),
        "leakage_check_passed": leak_gate.passed,
        "both_bad_escalated": both_bad,
        "parent_dataset": parent,
        **{k: policy.extra[k] for k in ("license", "license_name", "license_link", "language")
           if k in policy.extra},
        "dagster_run_id": context.run.run_id,
        "code_version": code_version(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        # rows the suspension removed from the parent's are a change even with nothing new
        "has_changes": candidate.has_changes or any(inherited_left_out.values()),
        "reviewer_standing": standing,
        "reviewer_suspension_rule": policy.suspension,
        "suspended_reviewers": barred,
        "rows_left_out_by_suspension": left_out,
        "slice_gates": slices_gate.value,
        "slices_routed_to_adjudication": routed,
        "rows_held_for_slice_adjudication": held_for_slices,
        "jsonl_files": jsonl_files,
    }
    missing = missing_fields(manifest)
    complete_gate = Gate("manifest_complete", not missing, len(missing),
                         f"every seed field present: {', '.join(REQUIRED_FIELDS)}",
                         offending=missing,
                         reason=f"missing {', '.join(missing)}" if missing else None)
    quarantined = window_quarantine(storage, days)
    manifest["quarantine"] = {kind: {"quarantined": c.quarantined, "kept": c.kept,
                                     "share": round(c.share, 4), "reasons": c.reasons}
                              for kind, c in quarantined.items()}
    quarantine = quarantine_gate(quarantined, policy.max_quarantined_share)
    gates = [residue, leak_gate, agree_gate, slices_gate, unsafe_gate, complete_gate,
             quarantine, parent_gate]
    manifest["gates"] = {g.name: {"passed": g.passed, "value": g.value, "rule": g.rule,
                                  "reason": g.reason} for g in gates}
    manifest["promotion_reasons"] = promotion_reasons(gates)

    storage.write_json(folder / "manifest.json", manifest)

    yield dg.MaterializeResult(metadata={
        "dataset_version": version,
        "parent_dataset": parent or "none",
        "source_window": manifest["source_window"] or "empty",
        "preferences": candidate.rows["preference"],
        "demonstrations": candidate.rows["sft"],
        "pointwise": candidate.rows["unpaired"],
        "new_rows": sum(candidate.new_rows.values()),
        "promotion_reasons": ", ".join(manifest["promotion_reasons"]) or "none",
        "agreement": agreement_record["value"] if agreement_record["value"] is not None else -1.0,
        "review_seconds_per_accepted_label": cost["seconds_per_accepted_label"]
        if cost["seconds_per_accepted_label"] is not None else -1.0,
    })
    for gate in gates:
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
def dataset_release(context: dg.AssetExecutionContext,
                    pipeline: PipelineResource) -> dg.MaterializeResult:
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
    key = resolve_signing_key(data_root=None if storage.remote else storage.root)
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
