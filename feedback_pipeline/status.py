"""What state a data root is in, read from its files alone (no Dagster instance needed).

`feedback-pipeline status` answers the questions on-call asks first: which days landed, how
many of their lines were quarantined, which stages wrote the day's partitions, whether the
release candidate passed its gates, and which release holds each day. Only counts, names and
versions are read or shown, never a record's text.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow.parquet as pq

from feedback_pipeline.storage import RESTRICTED, WAREHOUSE, Storage

LANDED_KINDS = ("traces", "reviews", "judge")
QUARANTINE_TABLES = {"traces": "trace_quarantine", "reviews": "review_quarantine",
                     "judge": "judge_quarantine"}


def _tables(storage: Storage, zone: str) -> list[str]:
    base = storage.path(zone)
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))


def _rows(storage: Storage, zone: str, table: str, day: str) -> int | None:
    if not storage.has_table(zone, table, day):
        return None
    source = storage.batches(zone, table, day).path
    with source.open("rb") as handle:
        return pq.ParquetFile(handle).metadata.num_rows


def _window(manifest: dict[str, Any]) -> tuple[str, str] | None:
    window = manifest.get("source_window")
    if not isinstance(window, str) or "/" not in window:
        return None
    start, end = window.split("/", 1)
    return start, end


def data_root_status(storage: Storage) -> dict[str, Any]:
    """Per day: landed files per kind, quarantined lines per kind, the partitions written per
    zone, and the releases whose window covers it; then the release candidate's gates and the
    releases on disk."""
    landed = {kind: set(storage.landing_days(kind)) for kind in LANDED_KINDS}
    tables = {zone: _tables(storage, zone) for zone in (WAREHOUSE, RESTRICTED)}
    written = {zone: {t: set(storage.table_days(zone, t)) for t in names}
               for zone, names in tables.items()}
    releases = []
    for version in storage.list_versions():
        path = storage.release_dir(version) / "manifest.json"
        manifest = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        releases.append({"version": version, "window": _window(manifest),
                         "rows": {k: manifest.get("row_counts", {}).get(k)
                                  for k in ("preferences", "demonstrations", "pointwise")}})
    days = sorted(set().union(*landed.values(),
                              *(d for zone in written.values() for d in zone.values())))
    out_days = []
    for day in days:
        out_days.append({
            "day": day,
            "landed_files": {kind: len(storage.landing_files(kind, day, (".jsonl", ".json",
                                                                         ".gz")))
                             for kind in LANDED_KINDS if day in landed[kind]},
            "quarantined_lines": {kind: n for kind, table in QUARANTINE_TABLES.items()
                                  if (n := _rows(storage, RESTRICTED, table, day))},
            "partitions": {zone: sorted(t for t, ds in by_table.items() if day in ds)
                           for zone, by_table in written.items()},
            "in_releases": [r["version"] for r in releases
                            if r["window"] and r["window"][0] <= day <= r["window"][1]],
        })
    candidate_path = storage.path(WAREHOUSE, "release_candidate", "manifest.json")
    candidate = None
    if candidate_path.exists():
        manifest = json.loads(candidate_path.read_text(encoding="utf-8"))
        candidate = {"dataset_version": manifest.get("dataset_version"),
                     "window": manifest.get("source_window"),
                     "promotion_reasons": manifest.get("promotion_reasons", []),
                     "gates": {name: bool(g.get("passed"))
                               for name, g in manifest.get("gates", {}).items()}}
    return {"data_root": str(storage.root), "days": out_days, "candidate": candidate,
            "releases": releases}


def status_text(status: dict[str, Any]) -> str:
    """The status as a few lines a person reads in a terminal."""
    lines = [f"data root {status['data_root']}"]
    if not status["days"]:
        lines.append("no landed days")
    for d in status["days"]:
        landed = ", ".join(f"{k} {v}" for k, v in d["landed_files"].items()) or "nothing landed"
        quarantined = ", ".join(f"{k} {v}" for k, v in d["quarantined_lines"].items()) or "none"
        stages = len(d["partitions"].get(WAREHOUSE, []))
        held = ", ".join(d["in_releases"]) or "no release"
        lines.append(f"{d['day']}: landed files: {landed}; quarantined lines: {quarantined}; "
                     f"{stages} warehouse tables written; in {held}")
    candidate = status["candidate"]
    if candidate:
        failed = [name for name, passed in candidate["gates"].items() if not passed]
        verdict = ("every gate passed" if not failed
                   else "gates failed: " + ", ".join(failed))
        lines.append(f"candidate {candidate['dataset_version']} ({candidate['window']}): "
                     f"{verdict}")
    for release in status["releases"]:
        window = "/".join(release["window"]) if release["window"] else "unknown window"
        rows = ", ".join(f"{k} {v}" for k, v in release["rows"].items() if v is not None)
        lines.append(f"release {release['version']} ({window}): {rows}")
    return "\n".join(lines)
