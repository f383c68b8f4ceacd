"""Audit a promoted release: its files still match their hashes and no frozen id leaks today."""

from __future__ import annotations

from pathlib import Path

import duckdb

from feedback_pipeline import settings
from feedback_pipeline.core.candidate import LANES, training_sql
from feedback_pipeline.core.leakage import find_all_leaks
from feedback_pipeline.core.release import RELEASE_FILES, read_manifest, verify_release_dir
from feedback_pipeline.core.signing import SIGNATURE_FILE, resolve_signing_key, trusted_keys
from feedback_pipeline.storage import Storage


def verify_release(data_root: str | Path, version: str) -> list[str]:
    """Problems with release `version`; empty when the release is intact and leak-free.

    `data_root` is a local folder or an fsspec URL."""
    storage = Storage(data_root)
    folder = storage.release_dir(version)
    if not (folder / "manifest.json").exists():
        return [f"{version}: no such release under {storage.releases_dir}"]
    problems = verify_release_dir(
        folder, trusted_keys(resolve_signing_key(data_root=None if storage.remote
                                                 else storage.root)))
    manifest = read_manifest(folder)
    policy = settings.load_policy(storage)
    frozen = settings.load_frozen_set(storage, policy.frozen_eval_set)
    damaged = {problem.split(":", 1)[0] for problem in problems}
    if SIGNATURE_FILE in damaged:  # nothing in it can be trusted to be what was released
        return problems
    lanes = {lane: storage.read_parquet(folder / RELEASE_FILES[lane]) for lane in LANES
             if (folder / RELEASE_FILES[lane]).exists() and RELEASE_FILES[lane] not in damaged}
    if lanes:
        with duckdb.connect() as con:
            for lane, table in lanes.items():
                con.register(lane, table)
            training = con.sql(training_sql({lane: lane for lane in lanes})).df()
        frozen_rows = storage.prompt_fingerprints(list(frozen.ids))
        leaks = find_all_leaks(training, frozen_rows, policy.near_duplicate_threshold)
        problems += [f"leak: {r.training_id} ({r.lane}) matches frozen {r.frozen_id} by {r.rule} "
                     f"(frozen set {frozen.set_id}; released against "
                     f"{manifest.get('frozen_evaluation_set')})" for r in leaks.itertuples()]
    return problems
