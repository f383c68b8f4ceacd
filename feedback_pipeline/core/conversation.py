"""The conversation a reviewer judged, as the prompt of a released row.

A reviewer decides with the whole exchange in view: the system instructions the assistant ran
under, the context it was given (the diff hunk, the CI log), earlier turns and tool results, and
the final user turn. A released row whose prompt holds only the final user turn trains DPO on a
choice without the evidence behind it, so every lane row carries `prompt_messages`: the redacted
conversation in TRL's conversational shape (a list of {role, content}), built here once from the
redacted trace.

The shape is deliberately flat (role and content strings only): chat templates differ in how
they take tool calls, and a nested, optional `tool_calls` struct would make the Parquet schema
depend on which traces a release happened to hold. Tool calls are rendered into the assistant
turn's text the same way a candidate that only calls a tool is rendered for review, and tool
results keep the `tool` role.

The conversation rides in the trace's `extra_json` (`messages`), which redaction already treats
string by string and the residue scans read, so the turns here are redacted with the same token
table as the prompt.
"""

import json
from collections.abc import Mapping
from typing import Any

CONTEXT_HEADING = "Context the reviewers saw:"
SYSTEM_ROLES = frozenset({"system", "developer"})
KNOWN_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
TEXT_ROLE_NAMES = {"system": "System", "user": "User", "assistant": "Assistant", "tool": "Tool"}
TEXT_TURN_SEPARATOR = "\n\n"
TEXT_ANSWER_CUE = "Assistant:\n"
"""What a plain-string prompt ends with: the answer follows on its own line, so a completion
never runs into the last word of the prompt."""


MESSAGES_JSON_TYPE = '[{"role": "VARCHAR", "content": "VARCHAR"}]'
"""The DuckDB JSON structure of `prompt_messages`: what from_json reads it as."""


def recorded_turns(extra_json: str | None) -> list[dict[str, Any]] | None:
    """The trace's logged `messages` (from `extra_json`), or None when there are none or they
    are not a list of role-tagged turns."""
    if not isinstance(extra_json, str) or not extra_json:
        return None
    try:
        extra = json.loads(extra_json)
    except json.JSONDecodeError:
        return None
    turns = extra.get("messages") if isinstance(extra, dict) else None
    if not isinstance(turns, list) or not turns:
        return None
    if not all(isinstance(t, dict) and t.get("role") in KNOWN_ROLES for t in turns):
        return None
    return turns


def logged_conversation_text(extra_json: str | None) -> str | None:
    """The logged turns as a reviewer reads them (each under its role's name), or None for a
    trace that logged no conversation: review tasks show it beside the prompt."""
    turns = recorded_turns(extra_json)
    if turns is None:
        return None
    return TEXT_TURN_SEPARATOR.join(_text_turn(t["role"], _turn_text(t)) for t in turns)


def _text_turn(role: str, content: str) -> str:
    """One turn of a plain-text conversation: the role's name, then the content on its own
    line (a developer turn reads as System, as it is folded into the system message)."""
    return f"{TEXT_ROLE_NAMES.get('system' if role == 'developer' else role, role)}:\n{content}"


def _turn_text(turn: Mapping[str, Any]) -> str:
    content = turn.get("content")
    parts = [content] if isinstance(content, str) and content else []
    for call in turn.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            parts.append(f"call {function.get('name')}({function.get('arguments') or ''})")
    return "\n".join(parts)


def prompt_messages(prompt: str | None, context: str | None,
                    extra_json: str | None) -> list[dict[str, str]]:
    """The redacted conversation up to the judged answer: one system message (the trace's own
    system and developer instructions, then the context under CONTEXT_HEADING), the logged
    turns in order, and the final user turn: `prompt`, appended when the logged turns do not
    already end their user turns with it (and alone when no turns were logged)."""
    turns = recorded_turns(extra_json) or []
    system = [_turn_text(t) for t in turns if t["role"] in SYSTEM_ROLES]
    if isinstance(context, str) and context.strip():
        system.append(f"{CONTEXT_HEADING}\n{context}")
    out = [{"role": "system", "content": "\n\n".join(s for s in system if s)}] \
        if any(system) else []
    out += [{"role": t["role"], "content": _turn_text(t)}
            for t in turns if t["role"] not in SYSTEM_ROLES]
    last_user = next((m for m in reversed(out) if m["role"] == "user"), None)
    if last_user is None or (prompt and last_user["content"] != prompt):
        # logged turns that stop before the judged question (a native trace's history)
        out.append({"role": "user", "content": prompt or ""})
    return out


def prompt_messages_json(trace: Mapping[str, Any]) -> str:
    """prompt_messages of a redacted trace row, as the JSON lane rows carry: exactly
    `json.dumps(messages, ensure_ascii=False)`, spelled out for the one shape it has (a list of
    {role, content} strings) with the string encoder json.dumps itself uses, because review
    resolution builds one per lane row and the general encoder's setup cost more than the
    encoding."""
    return "[" + ", ".join([
        f'{{"role": {_json_string(m["role"])}, "content": {_json_string(m["content"])}}}'
        for m in prompt_messages(trace.get("prompt"), trace.get("context"),
                                 trace.get("extra_json"))]) + "]"


_json_string = json.encoder.encode_basestring
"""A str as a JSON string literal, non-ASCII kept (json.dumps's encoder when ensure_ascii is
off; the C one where available)."""


def prompt_text(messages: list[dict[str, str]]) -> str:
    """The plain-string form of a conversational prompt, each turn under its role's name and
    ending with TEXT_ANSWER_CUE: the definition `prompt_text_sql` computes in DuckDB for the
    `*_text` configs (the tests hold the two equal)."""
    return TEXT_TURN_SEPARATOR.join([*(_text_turn(m["role"], m["content"]) for m in messages),
                                     TEXT_ANSWER_CUE])


def prompt_text_sql(messages: str) -> str:
    """The DuckDB expression of prompt_text over a list of {role, content} structs (the
    release builds its `*_text` configs in DuckDB, never row by row in Python)."""
    names = " ".join(f"WHEN '{role}' THEN '{name}'" for role, name in TEXT_ROLE_NAMES.items())
    turn = f"(CASE m.role {names} ELSE m.role END) || ':\n' || coalesce(m.content, '')"
    return (f"array_to_string(list_append(list_transform({messages}, lambda m: {turn}), "
            f"'{TEXT_ANSWER_CUE}'), '{TEXT_TURN_SEPARATOR}')")


def final_user_sql(messages: str) -> str:
    """The DuckDB expression of a message list's last user turn: the text the frozen set's
    prompts are compared with."""
    return f"list_filter({messages}, lambda m: m.role = 'user')[-1].content"
