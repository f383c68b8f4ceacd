import os

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from feedback_pipeline.core.candidate import (
    LANE_INPUT,
    LANE_ROW_GROUP_ROWS,
    empty_input,
    write_candidate,
)
from feedback_pipeline.core.manifest import (
    REQUIRED_FIELDS,
    Gate,
    missing_fields,
    next_version,
    promotion_reasons,
)
from feedback_pipeline.core.release import (
    ReleaseExistsError,
    content_fingerprint,
    dataset_card,
    list_versions,
    verify_files,
    write_release,
)


def seed_manifest():
    return {
        "dataset_version": "code-review-feedback-v12", "source_window": "2026-05-01/2026-05-15",
        "selection_policy_version": "hybrid-selector-v3",
        "redaction_version": "code-review-redactor-v2",
        "reidentification_access_rule": "privacy-approved-roles-only",
        "rubric_version": "code-review-rubric-v4", "reviewer_training_set": "code-reviewer-gold-v3",
        "agreement_report": {"cohens_kappa": 0.835, "policy_gate": 0.65},
        "row_counts": {"demonstrations": 182, "preferences": 904, "ties": 61, "rejected": 23},
        "frozen_evaluation_set": "code-review-eval-v5", "leakage_check_passed": True,
        "both_bad_escalated": 7, "parent_dataset": "code-review-feedback-v11",
    }


def test_seed_listing_10_manifest_is_complete_and_missing_fields_are_named():
    assert missing_fields(seed_manifest()) == []
    partial = seed_manifest()
    del partial["agreement_report"], partial["row_counts"]
    assert missing_fields(partial) == ["agreement_report", "row_counts"]
    assert len(REQUIRED_FIELDS) == 13


def test_seed_listing_11_draft_refused_and_repaired_promoted():
    draft = [Gate("redaction_residue", True, 0, ""), Gate("evaluation_leakage", False, 1, "",
                                                          offending=["attack-014"]),
             Gate("agreement_gate", True, 0.835, ""), Gate("unsafe_pairs_accepted", True, 0, "")]
    assert promotion_reasons(draft) == ["evaluation leakage"]
    repaired = [g if g.name != "evaluation_leakage" else Gate(g.name, True, 0, "") for g in draft]
    assert promotion_reasons(repaired) == []
    low = [Gate("agreement_gate", False, 0.41, "")]
    assert promotion_reasons(low) == ["agreement below declared gate"]


def test_versions_count_up_from_the_parent():
    assert next_version([], "ds") == ("ds-v1", None)
    assert next_version(["ds-v1", "ds-v10", "ds-v2", "other-v99"], "ds") == ("ds-v11", "ds-v10")


def test_release_is_written_once_and_verify_detects_tampering(tmp_path):
    releases = tmp_path / "releases"
    path = write_release(releases, "ds-v1", {"a.parquet": b"abc"}, seed_manifest())
    assert list_versions(releases) == ["ds-v1"]
    assert verify_files(path) == []
    before = sorted(p.name for p in releases.iterdir())
    with pytest.raises(ReleaseExistsError):
        write_release(releases, "ds-v1", {"a.parquet": b"other"}, seed_manifest())
    assert sorted(p.name for p in releases.iterdir()) == before
    assert (path / "a.parquet").read_bytes() == b"abc"
    os.chmod(path / "a.parquet", 0o644)
    (path / "a.parquet").write_bytes(b"abd")
    assert verify_files(path) == ["a.parquet: sha256 differs from the manifest"]


def test_candidate_is_cumulative_minus_retractions_and_detects_no_change(tmp_path):
    def window(name, ids):
        folder = tmp_path / name
        folder.mkdir()
        sources = {
            "preference": pa.table({"trace_id": ids, "prompt": ["p"] * len(ids),
                                    "chosen": ["c"] * len(ids), "rejected": ["r"] * len(ids),
                                    "prompt_fingerprint": ids}),
            "sft": pa.table({"trace_id": ["d1"], "prompt": ["p"], "answer": ["a"]}),
            "unpaired": pa.table({"trace_id": ["u1"], "prompt": ["p"], "completion": ["c"],
                                  "label": [True], "review_ids": ["rv1"]}),
        }
        clauses = {}
        for lane, table in sources.items():
            for column in LANE_INPUT[lane]:
                if column not in table.column_names:
                    kind = empty_input(lane).schema.field(column).type
                    table = table.append_column(column, pa.nulls(table.num_rows, kind))
            pq.write_table(table, folder / f"{lane}.parquet")
            clauses[lane] = f"read_parquet('{folder / f'{lane}.parquet'}')"
        return clauses

    def build(name, ids, parent, version, retracted=()):
        out = tmp_path / f"out-{name}"
        out.mkdir()
        with duckdb.connect() as con:
            return write_candidate(con, window(name, ids), parent, version, retracted, out)

    def lanes_of(candidate):
        return {lane: f"read_parquet('{path}')" for lane, path in candidate.files.items()}

    v1 = build("w1", ["t2", "t1"], {}, "ds-v1")
    assert v1.new_rows == {"preference": 2, "sft": 1, "unpaired": 1}
    assert v1.rows == {"preference": 2, "sft": 1, "unpaired": 1}
    sft = pq.read_table(v1.files["sft"]).to_pylist()[0]
    assert sft["messages"] == [{"role": "user", "content": "p"},
                               {"role": "assistant", "content": "a"}]
    assert pq.read_table(v1.files["unpaired"]).column("row_id").to_pylist() == ["u1:rv1"]
    assert pq.read_table(v1.files["preference"]).column("trace_id").to_pylist() == ["t1", "t2"]
    same = build("w2", ["t1", "t2"], lanes_of(v1), "ds-v2")
    assert not same.has_changes
    v2 = build("w3", ["t2", "t3"], lanes_of(v1), "ds-v2", retracted={"t1"})
    rows = pq.read_table(v2.files["preference"]).to_pylist()
    assert {r["trace_id"]: r["dataset_version"] for r in rows} == {"t2": "ds-v1", "t3": "ds-v2"}
    assert v2.retracted_rows["preference"] == 1
    assert v2.new_rows["preference"] == 1
    many = [f"t{i:06d}" for i in range(3 * LANE_ROW_GROUP_ROWS)]
    big = pq.ParquetFile(build("w4", many, {}, "ds-v1").files["preference"]).metadata
    assert big.num_rows == len(many)
    # bounded row groups (DuckDB closes one at the first 2,048-row vector past the target),
    # so the file streams back as the next release's parent
    sizes = [big.row_group(i).num_rows for i in range(big.num_row_groups)]
    assert len(sizes) >= 3 and max(sizes) <= LANE_ROW_GROUP_ROWS + 2048


def test_dataset_card_declares_configs_and_splits_without_test_names():
    card = dataset_card({**seed_manifest(), "gates": {}},
                        {"preference": "preference_pairs.parquet", "sft": "sft_demonstrations.parquet"})
    header = yaml.safe_load(card.split("---")[1])
    assert [c["config_name"] for c in header["configs"]] == ["preference", "sft"]
    assert all(f["split"] == "train" for c in header["configs"] for f in c["data_files"])
    assert not any(w in f["path"] for c in header["configs"] for f in c["data_files"]
                   for w in ("test", "eval", "valid"))


def test_the_card_carries_hub_metadata_and_the_content_fingerprint_in_every_config():
    manifest = {**seed_manifest(), "gates": {"residue": {"passed": True, "value": {"a": 1}}},
                "row_counts": {"preferences": 1200, "demonstrations": 30, "pointwise": 0,
                               "new": {"preference": 5}}}
    card = dataset_card(manifest, {"preference": "preference_pairs.parquet",
                                   "sft": "sft_demonstrations.parquet"}, fingerprint="ab" * 32)
    header = yaml.safe_load(card.split("---")[1])
    assert header["license"] == "other" and header["license_name"] and header["license_link"]
    assert header["language"] == ["en"] and header["task_categories"] == ["text-generation"]
    assert header["size_categories"] == ["1K<n<10K"]
    assert all("ab" * 32 in c["description"] for c in header["configs"])
    assert "{" not in card.split("---", 2)[2]  # counts and gate values are not raw dicts
    assert "| new | preference: 5 |" in card


def test_numbering_continues_a_declared_parent_series():
    assert next_version([], "ds", "ds-v11") == ("ds-v12", "ds-v11")
    assert next_version(["ds-v12"], "ds", "ds-v11") == ("ds-v13", "ds-v12")
    assert next_version(["ds-v3"], "ds", None) == ("ds-v4", "ds-v3")


def test_two_same_named_releases_from_two_data_roots_load_their_own_rows_from_one_cache(
        tmp_path):
    """Plain `datasets.load_dataset(<folder>)`, as a user runs it: the fingerprint in the card's
    configs is what keeps the second release from being served the first one's cache."""
    datasets = pytest.importorskip("datasets")
    loaded = []
    for root, n in (("root_a", 3), ("root_b", 5)):
        folder = tmp_path / root / "releases" / "code-review-feedback-v1"
        folder.mkdir(parents=True)
        payload = pa.BufferOutputStream()
        pq.write_table(pa.table({"prompt": [f"{root} {i}" for i in range(n)]}), payload)
        files = {"preference_pairs.parquet": payload.getvalue().to_pybytes()}
        (folder / "preference_pairs.parquet").write_bytes(files["preference_pairs.parquet"])
        (folder / "README.md").write_text(dataset_card(
            {**seed_manifest(), "gates": {}}, {"preference": "preference_pairs.parquet"},
            content_fingerprint(files)))
        ds = datasets.load_dataset(str(folder), name="preference", split="train",
                                   cache_dir=str(tmp_path / "cache"))
        loaded.append(sorted(ds["prompt"]))
    assert loaded == [[f"root_a {i}" for i in range(3)], [f"root_b {i}" for i in range(5)]]


def test_a_parent_release_with_plain_string_prompts_is_carried_into_the_conversational_format(
        tmp_path):
    """A release written before prompts became messages: its rows are kept, each string a
    one-message list, beside the new rows."""
    parent = tmp_path / "parent"
    parent.mkdir()
    plain = {
        "preference": pa.table({"prompt": ["old question"], "chosen": ["good"],
                                "rejected": ["bad"], "trace_id": ["t-old"],
                                "row_id": ["t-old"], "dataset_version": ["ds-v1"]}),
        "sft": pa.table({"messages": [[{"role": "user", "content": "old q"},
                                       {"role": "assistant", "content": "old a"}]],
                         "trace_id": ["d-old"], "row_id": ["d-old"],
                         "dataset_version": ["ds-v1"]}),
        "unpaired": pa.table({"prompt": ["old q"], "completion": ["old c"], "label": [True],
                              "trace_id": ["u-old"], "row_id": ["u-old:rv0"],
                              "dataset_version": ["ds-v1"]}),
    }
    for lane, table in plain.items():
        pq.write_table(table, parent / f"{lane}.parquet")
    window = tmp_path / "window"
    window.mkdir()
    sources = {}
    for lane in ("preference", "sft", "unpaired"):
        table = empty_input(lane)
        rows = {c: [None] for c in table.column_names} | {
            "trace_id": [f"{lane}-new"], "prompt": ["new question"], "chosen": ["c"],
            "rejected": ["r"], "answer": ["a"], "completion": ["done"], "label": [False]}
        table = pa.table({c: pa.array(rows[c], table.schema.field(c).type)
                          for c in table.column_names})
        pq.write_table(table, window / f"{lane}.parquet")
        sources[lane] = f"read_parquet('{window / f'{lane}.parquet'}')"
    out = tmp_path / "out"
    out.mkdir()
    with duckdb.connect() as con:
        candidate = write_candidate(
            con, sources, {lane: f"read_parquet('{parent / f'{lane}.parquet'}')"
                           for lane in plain}, "ds-v2", (), out)
    prefs = {r["trace_id"]: r for r in pq.read_table(candidate.files["preference"]).to_pylist()}
    assert prefs["t-old"]["prompt"] == [{"role": "user", "content": "old question"}]
    assert prefs["t-old"]["chosen"] == [{"role": "assistant", "content": "good"}]
    assert prefs["t-old"]["dataset_version"] == "ds-v1"
    assert prefs["preference-new"]["prompt"] == [{"role": "user", "content": "new question"}]
    unpaired = {r["trace_id"]: r for r in pq.read_table(candidate.files["unpaired"]).to_pylist()}
    assert unpaired["u-old"]["completion"] == [{"role": "assistant", "content": "old c"}]
    assert candidate.rows == {"preference": 2, "sft": 2, "unpaired": 2}
