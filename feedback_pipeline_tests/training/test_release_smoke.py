"""TRL's DPO, SFT and KTO trainers consume a release folder exactly as a user would load it with
`datasets.load_dataset(<folder>, name=<config>)`, and two same-named releases do not get each
other's rows from a shared datasets cache. Needs the train extra (pip install -e '.[train]')."""

import math
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="needs the train extra: pip install -e '.[train]'")
pytest.importorskip("trl", reason="needs the train extra: pip install -e '.[train]'")

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from feedback_pipeline.training.release_smoke import (  # noqa: E402
    CONFIG_SPECS,
    ROLE_MARKERS,
    load_release_config,
    read_card_configs,
    train_on_release,
)

pytestmark = pytest.mark.slow

VERSION = "code-review-feedback-v1"
SYSTEM = "You review pull requests for the payments service."
FILES = {
    "preference": "preference_pairs.parquet",
    "preference_text": "preference_pairs_text.parquet",
    "sft": "sft_demonstrations.parquet",
    "sft_text": "sft_demonstrations_text.parquet",
    "unpaired": "pointwise_labels.parquet",
    "unpaired_text": "pointwise_labels_text.parquet",
}


def msg(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


def conversation(i: int, tag: str) -> list[dict[str, str]]:
    """System message, then (every third row) earlier turns including a tool result, then the
    final user turn."""
    turns = [msg("system", SYSTEM)]
    if i % 3 == 0:
        turns += [
            msg("user", f"Run the linter on PR #{i}."),
            msg("assistant", "Running ruff on the diff."),
            msg("tool", f"ruff: {i} findings in checkout.py"),
        ]
    turns.append(msg("user", f"[{tag}] Review PR #{100 + i}: it adds a retry loop to checkout."))
    return turns


def render(turns: list[dict[str, str]]) -> str:
    return "\n".join(f"{t['role']}: {t['content']}" for t in turns)


def good(i: int) -> str:
    return f"The retry loop in PR #{100 + i} needs a backoff and a cap; see checkout.py."


def bad(i: int) -> str:
    return f"Looks fine, merge PR #{100 + i}."


def write_release(root: Path, tag: str, n: int = 8) -> Path:
    """A release folder in the target layout: six parquet files plus the dataset card whose YAML
    header declares the configs (and a fingerprint, which loading must not depend on)."""
    release = root / "releases" / VERSION
    release.mkdir(parents=True)
    prov = {
        "trace_id": [f"{tag}-trace-{i:03d}" for i in range(n)],
        "dataset_version": [VERSION] * n,
        "source": [f"review-{tag}"] * n,
    }
    convs = [conversation(i, tag) for i in range(n)]
    labels = [i % 2 == 0 for i in range(n)]
    unpaired_answers = [good(i) if lab else bad(i) for i, lab in enumerate(labels)]
    tables = {
        "preference": {
            "prompt": convs,
            "chosen": [[msg("assistant", good(i))] for i in range(n)],
            "rejected": [[msg("assistant", bad(i))] for i in range(n)],
        },
        "preference_text": {
            "prompt": [render(c) for c in convs],
            "chosen": [good(i) for i in range(n)],
            "rejected": [bad(i) for i in range(n)],
        },
        "sft": {"messages": [c + [msg("assistant", good(i))] for i, c in enumerate(convs)]},
        "sft_text": {
            "prompt": [render(c) for c in convs],
            "completion": [good(i) for i in range(n)],
        },
        "unpaired": {
            "prompt": convs,
            "completion": [[msg("assistant", a)] for a in unpaired_answers],
            "label": labels,
        },
        "unpaired_text": {
            "prompt": [render(c) for c in convs],
            "completion": unpaired_answers,
            "label": labels,
        },
    }
    for name, columns in tables.items():
        pq.write_table(pa.table({**columns, **prov}), release / FILES[name])
    lines = ["---", f"fingerprint: {tag * 8}", "configs:"]
    for name, path in FILES.items():
        lines += [
            f"- config_name: {name}",
            "  data_files:",
            "  - split: train",
            f"    path: {path}",
        ]
        if name == "preference":
            lines.append("  default: true")
    lines += ["---", f"# {VERSION}", "", "Code-review feedback release (test fixture)."]
    (release / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return release


def test_every_release_config_trains_with_trl(tmp_path):
    release = write_release(tmp_path / "data", "A")
    assert set(read_card_configs(release)) == set(CONFIG_SPECS)

    results = train_on_release(
        release, tmp_path / "model", tmp_path / "out", steps=2, cache_dir=tmp_path / "hf-cache"
    )

    assert set(results) == set(CONFIG_SPECS)
    for name, result in results.items():
        assert result["steps"] == 2, name
        assert len(result["losses"]) == 2, (name, result["losses"])
        assert all(math.isfinite(x) for x in result["losses"]), (name, result["losses"])
        assert {"trace_id", "dataset_version", "source"} <= set(result["columns_dropped"]), name
        text = result["first_example"]
        if CONFIG_SPECS[name].conversational:
            assert result["chat_template_applied"], (name, text)
            assert SYSTEM in text and "<|end|>" in text, (name, text)
        else:
            assert not any(m in text for m in ROLE_MARKERS), (name, text)
    assert results["preference"]["trainer"] == "DPOTrainer"
    assert results["sft"]["trainer"] == "SFTTrainer"
    assert results["unpaired"]["trainer"] == "KTOTrainer"
    # Row 0 is multi-turn: the tool turn is rendered by the template too.
    assert "<|tool|>ruff: 0 findings" in results["sft"]["first_example"]


def test_same_named_releases_do_not_share_rows_in_one_cache(tmp_path):
    first = write_release(tmp_path / "root-a", "A")
    second = write_release(tmp_path / "root-b", "B")
    assert first.name == second.name == VERSION
    cache = tmp_path / "hf-cache"

    for name in ("preference", "sft_text"):
        a = load_release_config(first, name, cache)
        b = load_release_config(second, name, cache)
        assert set(a["trace_id"]) == {f"A-trace-{i:03d}" for i in range(8)}, name
        assert set(b["trace_id"]) == {f"B-trace-{i:03d}" for i in range(8)}, name
        assert a.cache_files[0]["filename"] != b.cache_files[0]["filename"]


def test_plain_load_dataset_keys_cache_on_folder_name_and_card_only(tmp_path):
    """Why load_release_config passes data_files: in datasets 5.2 a plain load of a same-named
    release (different root, rows and fingerprint) hits the first one's cache entry. If this
    starts failing, datasets now keys on the files and the explicit data_files can go."""
    from datasets import load_dataset

    first = write_release(tmp_path / "root-a", "A")
    second = write_release(tmp_path / "root-b", "B")
    cache = str(tmp_path / "hf-cache")

    a = load_dataset(str(first), name="sft_text", split="train", cache_dir=cache)
    b = load_dataset(str(second), name="sft_text", split="train", cache_dir=cache)
    assert a["trace_id"][0] == "A-trace-000"
    assert b["trace_id"][0] == "A-trace-000"  # stale: release B's load returns release A's rows
    assert a.cache_files[0]["filename"] == b.cache_files[0]["filename"]
    assert Path(a.cache_files[0]["filename"]).relative_to(cache).parts[:3] == (
        VERSION,
        "sft_text",
        "0.0.0",
    )


def test_a_pipeline_release_trains_with_dpo_sft_and_kto_on_every_config(pipeline_run,
                                                                          tmp_path):
    """Not a fixture in the target layout: the release `feedback-pipeline run` promoted."""
    root, _, _, outcome = pipeline_run
    release = root / "releases" / outcome.dataset_version
    assert set(read_card_configs(release)) == set(CONFIG_SPECS)

    results = train_on_release(release, tmp_path / "model", tmp_path / "out", steps=2,
                               cache_dir=tmp_path / "hf-cache")

    for name, result in results.items():
        assert result["steps"] == 2 and result["losses_finite"], (name, result["losses"])
        assert result["chat_template_applied"] == CONFIG_SPECS[name].conversational, name
    assert {r["trainer"] for r in results.values()} == {"DPOTrainer", "SFTTrainer",
                                                        "KTOTrainer"}
    # the reviewed context reaches the model: the system turn renders in the DPO prompt of a
    # pair whose trace had context
    prefs = pq.read_table(release / "preference_pairs.parquet").to_pylist()
    if prefs[0]["prompt"][0]["role"] == "system":
        assert "<|system|>" in results["preference"]["first_example"]


def test_two_pipeline_releases_of_one_name_load_their_own_rows_from_one_cache(pipeline_run,
                                                                               tmp_path):
    import dagster as dg

    from feedback_pipeline.cli import run_pipeline
    from feedback_pipeline.synth.generator import generate

    first = pipeline_run[0] / "releases" / pipeline_run[3].dataset_version
    other = tmp_path / "other" / "data"
    generate(other, days=1, traces_per_day=60, seed=23)
    outcome = run_pipeline(other, instance=dg.DagsterInstance.ephemeral())
    second = other / "releases" / outcome.dataset_version
    assert first.name == second.name
    cache = tmp_path / "hf-cache"
    for name, file in (("preference", "preference_pairs.parquet"),
                       ("sft_text", "sft_demonstrations_text.parquet")):
        for release in (first, second, first):
            loaded = load_release_config(release, name, cache)
            own = pq.read_table(release / file, columns=["trace_id"])["trace_id"].to_pylist()
            assert sorted(loaded["trace_id"]) == sorted(own), (release, name)
    assert pq.read_table(first / "preference_pairs.parquet")["trace_id"].to_pylist() != \
        pq.read_table(second / "preference_pairs.parquet")["trace_id"].to_pylist()
    # and as a user loads it, by folder alone: the card's fingerprint keys the cache
    from datasets import load_dataset

    plain = str(tmp_path / "plain-cache")
    for release in (first, second, first):
        loaded = load_dataset(str(release), "preference", split="train", cache_dir=plain)
        own = pq.read_table(release / "preference_pairs.parquet", columns=["trace_id"])
        assert sorted(loaded["trace_id"]) == sorted(own["trace_id"].to_pylist()), release
