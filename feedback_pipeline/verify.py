"""Audit a promoted release: its files still match their hashes and no frozen id leaks today."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from feedback_pipeline import settings
from feedback_pipeline.core.leakage import find_leaks
from feedback_pipeline.core.release import RELEASE_FILES, read_manifest, verify_files
from feedback_pipeline.stages.release import frozen_fingerprints
from feedback_pipeline.storage import Storage


def verify_release(data_root: Path, version: str) -> list[str]:
    """Problems with release `version`; empty when the release is intact and leak-free."""
    storage = Storage(data_root)
    folder = storage.releases_dir / version
    if not (folder / "manifest.json").exists():
        return [f"{version}: no such release under {storage.releases_dir}"]
    problems = verify_files(folder)
    manifest = read_manifest(folder)
    policy = settings.load_policy(storage)
    frozen = settings.load_frozen_set(storage, policy.frozen_eval_set)
    training = []
    for lane, name in RELEASE_FILES.items():
        if (folder / name).exists() and f"{name}: missing" not in problems:
            table = pq.read_table(folder / name, columns=["trace_id", "prompt_fingerprint"])
            training.append(table.to_pandas().assign(lane=lane))
    if training:
        leaks = find_leaks(pd.concat(training, ignore_index=True),
                           frozen_fingerprints(storage, list(frozen.ids)))
        problems += [f"leak: {r.training_id} ({r.lane}) matches frozen {r.frozen_id} by {r.rule} "
                     f"(frozen set {frozen.set_id}; released against "
                     f"{manifest.get('frozen_evaluation_set')})" for r in leaks.itertuples()]
    return problems
