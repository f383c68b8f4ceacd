"""A day through redaction batch by batch: with corpus-stable tokens, values found by their
context in one batch are replaced where they recur bare in any other batch of the day."""

import functools
import json

import pyarrow as pa
import pytest

from feedback_pipeline.core.contract import TRACE_SCHEMA
from feedback_pipeline.core.redaction import Redactor
from feedback_pipeline.core.redaction.batch import (
    RecurrenceFinder,
    RedactionJob,
    redact_batch,
    redact_day,
)
from feedback_pipeline.core.redaction.redactor import DayValues
from feedback_pipeline.core.vault import VaultKey, reidentify
from feedback_pipeline.storage import RESTRICTED, Storage
from feedback_pipeline_tests.core.redaction.conftest import DENY_TERMS, ENGINES, _trace

KEY = VaultKey.from_secret(b"k" * 32)
PASSWORD = "Zq8vRt3mWp"


def _job(stable: bool) -> RedactionJob:
    return RedactionJob(tuple(DENY_TERMS), "test-v1", stable, KEY)


def _batches(*groups):
    """Raw batches, one per group of trace rows, rebuilt the same on every call."""
    def batches():
        for rows in groups:
            yield pa.RecordBatch.from_pylist(rows, schema=TRACE_SCHEMA)
    return batches


def _day(tmp_path, *groups, stable=True, workers=1):
    spool = functools.partial(Storage(tmp_path).spool, RESTRICTED)
    return list(redact_day(_batches(*groups), job=_job(stable), workers=workers, spool=spool))


def _recurring_day():
    """The password recurs bare in the first and third batches; only the second batch shows
    it with its context (a CLI flag)."""
    return (
        [_trace(f"Ask {PASSWORD} before the deploy", None, "fine", trace_id="t1"),
         _trace("nothing here", None, "ok", trace_id="t2")],
        [_trace(f"mysql -u admin -p{PASSWORD} -h db", None, "ok", trace_id="t3")],
        [_trace("unrelated", f"Rotate {PASSWORD} today and not x{PASSWORD}", "ok",
                trace_id="t4"),
         {**_trace("json", None, "ok", trace_id="t5"),
          "extra_json": json.dumps({"note": f"call {PASSWORD}", "n": 1})}],
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_a_value_found_in_one_batch_is_replaced_in_earlier_and_later_batches(tmp_path,
                                                                              workers):
    results = _day(tmp_path, *_recurring_day(), workers=workers)
    rows = [row for r in results for row in r.table.to_pylist()]
    by_id = {row["trace_id"]: row for row in rows}
    assert [row["trace_id"] for row in rows] == ["t1", "t2", "t3", "t4", "t5"]
    token = by_id["t3"]["prompt"].split("-p", 1)[1].split()[0]
    assert token.startswith("<PASSWORD_")
    assert by_id["t1"]["prompt"] == f"Ask {token} before the deploy"
    assert by_id["t4"]["context"] == f"Rotate {token} today and not x{PASSWORD}"
    assert json.loads(by_id["t5"]["extra_json"]) == {"note": f"call {token}", "n": 1}
    assert [r.redone for r in results] == [True, False, True]
    # the vault maps the token back for every trace it now stands in
    sealed = pa.concat_tables(pa.Table.from_pandas(r.sealed, preserve_index=False)
                              if not isinstance(r.sealed, pa.Table) else r.sealed
                              for r in results).to_pandas()
    revealed = reidentify(sealed, requester="test", purpose="check", key=KEY,
                          audit_log=tmp_path / "audit.jsonl")
    assert set(revealed.loc[revealed["token"] == token, "trace_id"]) == {"t1", "t3", "t4", "t5"}
    assert set(revealed.loc[revealed["token"] == token, "value"]) == {PASSWORD}
    assert not list((tmp_path / RESTRICTED / ".spool").glob("*.arrows"))  # scratch removed


def test_without_corpus_stable_tokens_one_pass_and_tokens_stay_per_trace(tmp_path):
    """Per-trace tokens number values within a trace; a bare value in another trace has
    nothing to join to, so the day is redacted in one pass and nothing is redone."""
    results = _day(tmp_path, *_recurring_day(), stable=False)
    rows = {row["trace_id"]: row for r in results for row in r.table.to_pylist()}
    assert rows["t3"]["prompt"] == "mysql -u admin -p<PASSWORD_1> -h db"
    assert rows["t1"]["prompt"] == f"Ask {PASSWORD} before the deploy"
    assert not any(r.redone for r in results) and all(not r.learned for r in results)
    assert not (tmp_path / RESTRICTED / ".spool").exists() or not list(
        (tmp_path / RESTRICTED / ".spool").glob("*.arrows"))


def test_a_day_with_nothing_recurring_is_not_redone_and_keeps_its_counts(tmp_path):
    day = ([_trace("mysql -pHx7TgQp2Lm -h db", None, "ok", trace_id="t1")],
           [_trace("plain words", None, "ok", trace_id="t2")], [])
    results = _day(tmp_path, *day)
    assert [r.redone for r in results] == [False, False, False]
    assert results[0].tokens_by_kind == {"PASSWORD": 1}
    assert [r.table.num_rows for r in results] == [1, 1, 0]
    assert [len(r.sealed) if not isinstance(r.sealed, pa.Table) else r.sealed.num_rows
            for r in results] == [1, 0, 0]


def test_redact_batch_learns_context_found_values_and_applies_known_ones():
    batch = pa.Table.from_pylist([_trace("redis-cli -a Kp9xWq2Rtz ping", None, "Use Mv4nBq8Ls",
                                         trace_id="t1")], schema=TRACE_SCHEMA)
    first = redact_batch(batch, job=_job(True))
    assert list(first.learned) == ["Kp9xWq2Rtz"] and first.learned["Kp9xWq2Rtz"][0] == "PASSWORD"
    again = redact_batch(batch, job=_job(True), known={"Mv4nBq8Ls": ("PASSWORD", "Mv4nBq8Ls")})
    text = again.table.column("candidates").to_pylist()[0][0]["text"]
    assert text.startswith("Use <PASSWORD_") and again.redone
    assert again.tokens_by_kind == {"PASSWORD": 2}


def test_day_values_need_corpus_stable_tokens():
    with pytest.raises(ValueError, match="corpus-stable"):
        Redactor(DENY_TERMS).redact_traces(
            pa.Table.from_pylist([_trace("x", None)], schema=TRACE_SCHEMA).to_pandas(),
            DayValues({"abcd": ("PASSWORD", "abcd")}))


@pytest.mark.parametrize("engine", ENGINES)
def test_recurrence_finder_respects_word_edges_and_json_escapes(engine):
    finder = RecurrenceFinder(["S3cr3t", 'pa"ss\\word', "Zoë-pass", "éclair42"], engine=engine)

    def table(**texts):
        return pa.Table.from_pylist([_trace(texts.get("prompt", ""), texts.get("context"),
                                            trace_id="t1")
                                     | {"extra_json": texts.get("extra_json")}],
                                    schema=TRACE_SCHEMA)

    assert not finder.found_in(table(prompt="xS3cr3t and S3cr3tX and <PASSWORD_ab12>"))
    assert not finder.found_in(table(prompt="an xéclair42 and éclair42x"))
    assert finder.found_in(table(prompt="«éclair42»"))
    assert finder.found_in(table(prompt="say S3cr3t."))
    assert finder.found_in(table(context="(S3cr3t)"))
    assert finder.found_in(table(extra_json=json.dumps({"a": 'pa"ss\\word'})))
    assert finder.found_in(table(extra_json=json.dumps({"a": "Zoë-pass"})))
    assert finder.found_in(table(extra_json=json.dumps({"a": "Zoë-pass"}, ensure_ascii=False)))
    assert not RecurrenceFinder([]).found_in(table(prompt="S3cr3t"))
