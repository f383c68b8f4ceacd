"""The prompt a released row carries is the conversation the reviewers judged."""

import json

import duckdb
import pyarrow as pa

from feedback_pipeline.core.conversation import (
    CONTEXT_HEADING,
    MESSAGES_JSON_TYPE,
    prompt_messages,
    prompt_messages_json,
    prompt_text,
    prompt_text_sql,
)
from feedback_pipeline.core.texts import RELEASE_TEXTS, residue_in_table

TURNS = [
    {"role": "developer", "content": "You review pull requests."},
    {"role": "user", "content": "Lint PR 7."},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "ruff", "arguments": '{"pr": 7}'}}]},
    {"role": "tool", "content": "2 findings", "tool_call_id": "c1"},
    {"role": "user", "content": "Is it safe to merge?"},
]


def test_logged_turns_keep_their_order_with_instructions_and_context_in_one_system_message():
    messages = prompt_messages("Is it safe to merge?", "diff --git a/x b/x",
                               json.dumps({"messages": TURNS, "app": "ci"}))
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "user"]
    assert messages[0]["content"] == ("You review pull requests.\n\n"
                                      f"{CONTEXT_HEADING}\ndiff --git a/x b/x")
    assert messages[2]["content"] == 'call ruff({"pr": 7})'
    assert messages[-1] == {"role": "user", "content": "Is it safe to merge?"}


def test_a_native_trace_is_its_context_and_its_prompt():
    assert prompt_messages("Review this.", None, None) == [
        {"role": "user", "content": "Review this."}]
    assert prompt_messages("Review this.", "CI log", '{"app": "ci"}') == [
        {"role": "system", "content": f"{CONTEXT_HEADING}\nCI log"},
        {"role": "user", "content": "Review this."}]
    # turns that are not a list of role-tagged messages are not a conversation
    assert prompt_messages("Q", None, json.dumps({"messages": [{"text": "x"}]})) == [
        {"role": "user", "content": "Q"}]
    # logged history that stops before the judged question: the question is appended
    history = prompt_messages("And now?", None, json.dumps({"messages": [
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": "First answer"}]}))
    assert [m["content"] for m in history] == ["First question", "First answer", "And now?"]
    # only assistant turns logged: the final user turn is still there
    only = prompt_messages("Q", None, json.dumps({"messages": [
        {"role": "system", "content": "S"}]}))
    assert only == [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]


def test_the_text_prompt_is_rendered_the_same_in_duckdb_and_ends_with_the_answer_cue():
    trace = {"prompt": "Is it safe to merge?", "context": "diff",
             "extra_json": json.dumps({"messages": TURNS})}
    encoded = prompt_messages_json(trace)
    text = prompt_text(json.loads(encoded))
    sql = prompt_text_sql(f"from_json(?, '{MESSAGES_JSON_TYPE}')")
    assert duckdb.execute(f"SELECT {sql}", [encoded]).fetchone()[0] == text
    assert text.startswith("System:\nYou review pull requests.")
    assert text.endswith("User:\nIs it safe to merge?\n\nAssistant:\n")


def test_the_release_residue_scan_reads_every_message_of_a_conversation_column():
    secret = "AKIA" + "Z7QXC2VBN4M5LK3J"
    messages = pa.array([[{"role": "user", "content": "fine"}],
                         [{"role": "system", "content": f"key {secret}"},
                          {"role": "user", "content": "fine"}]])
    table = pa.table({"trace_id": ["t1", "t2"], "prompt": messages})
    offending, kinds = residue_in_table(table, RELEASE_TEXTS["preference"], ())
    assert offending == ["t2"] and kinds


def test_the_messages_json_is_byte_for_byte_what_json_dumps_writes():
    """prompt_messages_json writes the JSON by hand for speed; it must stay json.dumps's."""
    awkward = 'quotes " and \\ slashes / tabs\t newlines\n control \x01 ünïcode 中文 \U0001f600'
    traces = [
        {"prompt": "Q", "context": None, "extra_json": None},
        {"prompt": None, "context": "", "extra_json": ""},
        {"prompt": awkward, "context": awkward, "extra_json": json.dumps({"messages": [
            {"role": "developer", "content": awkward},
            {"role": "user", "content": "earlier \ud800 question"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"function": {"name": "run", "arguments": '{"cmd": "ls"}'}}]},
            {"role": "tool", "content": awkward}]})},
    ]
    for trace in traces:
        messages = prompt_messages(trace["prompt"], trace["context"], trace["extra_json"])
        assert prompt_messages_json(trace) == json.dumps(messages, ensure_ascii=False)
        assert json.loads(prompt_messages_json(trace)) == messages
