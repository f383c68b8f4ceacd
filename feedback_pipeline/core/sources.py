"""Other log formats mapped onto native trace lines, so one validation/quarantine path serves all.

Teams log model calls as OpenAI request/response pairs, OpenTelemetry GenAI spans, OpenInference
spans or ad-hoc JSON Lines. Rather than teaching the contract each shape, every source line is
mapped here to native trace JSON and then validated exactly like a native line: a mapped line
that breaks the contract is quarantined by the contract, a line that cannot be mapped at all
becomes a `SourceFault` that the caller quarantines with the same machinery.

Two rules hold for every format:

- a fault reason names the field path and the rule, never a value: source lines hold prompts,
  tool results and keys, while reasons are grouped and shown in run metadata;
- nothing the mapping does not use is dropped: it is kept under one key named after the
  format ("openai", "otel", "openinference", "source"), which the contract keeps in extra_json.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from google.protobuf import json_format
from openinference.semconv.trace import (
    MessageAttributes,
    MessageContentAttributes,
    OpenInferenceSpanKindValues,
    SpanAttributes,
    ToolCallAttributes,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from feedback_pipeline.core.contract import (
    TRACE_FIELDS,
    DuplicateKey,
    LineFault,
    NonFiniteNumber,
    json_error_reason,
    loads_strict,
)

SOURCE_FORMATS: tuple[str, ...] = (
    "native", "openai_chat", "openai_responses", "otlp_genai", "openinference", "jsonl_mapping")

OPENAI_FORMATS: tuple[str, ...] = ("openai_chat", "openai_responses")
"""Two names for one adapter: each line is read as the API it was logged from (Chat
Completions or Responses), so a file may mix both; the name only says what a source holds."""

MESSAGE_ROLES: tuple[str, ...] = ("system", "developer", "user", "assistant", "tool")

MAPPABLE_FIELDS: tuple[str, ...] = (*TRACE_FIELDS, "messages")
"""Contract fields a `jsonl_mapping` may map (the contract's fields plus the conversation)."""

DEFAULTABLE_FIELDS: tuple[str, ...] = (
    "context", "approved_answer", "reserved_for_evaluation", "unsafe_effect", "slice",
    "prompt_template_version", "policy_version")
"""Fields that may be constant for a whole source; ids, times, prompts and answers never are."""

CANDIDATE_FIELDS: tuple[str, ...] = ("candidate_id", "text", "model_id", "generation")

# The event-based GenAI convention (semconv <= 1.36). semantic-conventions 0.66b2 no longer
# ships `_incubating.events` (the GenAI events moved to the GenAI semconv repository), so the
# published event names are spelled here.
_EVENT_ROLES = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
_CHOICE_EVENT = "gen_ai.choice"

_GEN_AI_REQUEST_PARAMS = {
    gen_ai.GEN_AI_REQUEST_TEMPERATURE: "temperature",
    gen_ai.GEN_AI_REQUEST_TOP_P: "top_p",
    gen_ai.GEN_AI_REQUEST_TOP_K: "top_k",
    gen_ai.GEN_AI_REQUEST_SEED: "seed",
    gen_ai.GEN_AI_REQUEST_MAX_TOKENS: "max_tokens",
    gen_ai.GEN_AI_REQUEST_FREQUENCY_PENALTY: "frequency_penalty",
    gen_ai.GEN_AI_REQUEST_PRESENCE_PENALTY: "presence_penalty",
    gen_ai.GEN_AI_REQUEST_STOP_SEQUENCES: "stop",
    gen_ai.GEN_AI_REQUEST_CHOICE_COUNT: "n",
}
_GEN_AI_USAGE = {
    gen_ai.GEN_AI_USAGE_INPUT_TOKENS: "input_tokens",
    gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS: "output_tokens",
}
_OI_USAGE = {
    SpanAttributes.LLM_TOKEN_COUNT_PROMPT: "prompt_tokens",
    SpanAttributes.LLM_TOKEN_COUNT_COMPLETION: "completion_tokens",
    SpanAttributes.LLM_TOKEN_COUNT_TOTAL: "total_tokens",
}

# Request parameters of a chat completion that describe how a candidate was generated.
_OPENAI_GENERATION_PARAMS = (
    "temperature", "top_p", "seed", "max_tokens", "max_completion_tokens", "frequency_penalty",
    "presence_penalty", "n", "stop", "reasoning_effort", "logit_bias")

_NOT_ID_CHAR = re.compile(r"[^A-Za-z0-9._:/-]")
_HEX = re.compile(r"[0-9a-fA-F]*")
_PATH = re.compile(r"[^.\[\]]+(?:\[\d+\])*(?:\.[^.\[\]]+(?:\[\d+\])*)*")
_PATH_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_PARSE_FIELD = re.compile(r"Failed to parse (\w+) field")
_SURROGATE = re.compile("[\ud800-\udfff]")
_MISSING = object()


@dataclass(frozen=True)
class SourceFault:
    """A source line (or group, or span) that could not be mapped to a native trace.

    Not a str, unlike `LineFault`, so a caller cannot mistake it for a line: the raw line
    travels with it for the restricted quarantine table."""

    reason: str
    raw_line: str


@dataclass(frozen=True)
class SourceSpec:
    """How one source's lines map to native traces (see `parse_source_spec`)."""

    format: str = "native"
    fields: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    candidate_fields: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    defaults: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    metadata: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass
class SourceStats:
    """What `native_lines` saw beyond the lines it yields, for the caller to report.

    Span formats carry every span of a service (HTTP, database, tool spans), not only model
    calls; those are not traces and not faults, so they are counted here instead of yielded."""

    spans_seen: int = 0
    spans_skipped: int = 0  # spans without GenAI chat content: not traces, not faults
    traces: int = 0  # native trace lines yielded
    faults: int = 0  # SourceFaults and passed-through LineFaults yielded

    def summary(self) -> str:
        return f"{self.spans_skipped} spans without GenAI content skipped"


class _Fault(Exception):
    """A mapping rule broken; the message is the reason (a path and a rule, never a value)."""


def parse_source_spec(obj: Any, where: str) -> SourceSpec:
    """A checked `SourceSpec` from a declaration (settings), or ValueError naming `where` and
    the key: a wrong declaration would otherwise quarantine every line of the source."""
    if isinstance(obj, str):
        obj = {"format": obj}
    if not isinstance(obj, Mapping):
        raise ValueError(f"{where}: a source must be a mapping with a format key")
    known = {"format", "fields", "candidate_fields", "defaults", "metadata"}
    for key in obj:
        if key not in known:
            raise ValueError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(known))})")
    fmt = obj.get("format")
    if fmt not in SOURCE_FORMATS:
        raise ValueError(f"{where}.format must be one of {', '.join(SOURCE_FORMATS)}")
    fields = _path_map(obj.get("fields"), f"{where}.fields", MAPPABLE_FIELDS)
    candidate_fields = _path_map(obj.get("candidate_fields"), f"{where}.candidate_fields",
                                 CANDIDATE_FIELDS)
    metadata = _path_map(obj.get("metadata"), f"{where}.metadata",
                         ("trace_id", *DEFAULTABLE_FIELDS))
    if fields and fmt != "jsonl_mapping":
        raise ValueError(f"{where}.fields is only for format jsonl_mapping")
    if candidate_fields and "candidates" not in fields:
        raise ValueError(f"{where}.candidate_fields needs fields.candidates")
    if metadata and fmt not in OPENAI_FORMATS:
        raise ValueError(f"{where}.metadata is only for formats {' and '.join(OPENAI_FORMATS)}")
    if fmt == "jsonl_mapping":
        if "prompt" not in fields and "messages" not in fields:
            raise ValueError(f"{where}.fields must map prompt or messages")
        if "created_at" not in fields:
            raise ValueError(f"{where}.fields must map created_at")
    defaults = obj.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        raise ValueError(f"{where}.defaults must be a mapping")
    for key, value in defaults.items():
        if key not in DEFAULTABLE_FIELDS:
            raise ValueError(f"{where}.defaults.{key}: not a field that can be constant for a "
                             f"source (one of {', '.join(DEFAULTABLE_FIELDS)})")
        if value is not None and not isinstance(value, str | bool):
            raise ValueError(f"{where}.defaults.{key} must be a string or true/false")
    return SourceSpec(fmt, MappingProxyType(fields), MappingProxyType(candidate_fields),
                      MappingProxyType(dict(defaults)), MappingProxyType(metadata))


def _path_map(value: Any, where: str, allowed: tuple[str, ...]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be a mapping of field to path")
    out = {}
    for key, path in value.items():
        if key not in allowed:
            raise ValueError(f"{where}.{key}: unknown field (one of {', '.join(allowed)})")
        if not isinstance(path, str) or not _PATH.fullmatch(path):
            raise ValueError(f"{where}.{key}: a path is dotted keys with [n] list indices, "
                             "e.g. input.messages[0].content")
        out[key] = path
    return out


def native_lines(
    lines: Iterable[tuple[int, str | LineFault]],
    spec: SourceSpec,
    stats: SourceStats | None = None,
) -> Iterator[tuple[int, str | LineFault | SourceFault]]:
    """(source line number, native trace JSON text | LineFault | SourceFault) for the numbered
    lines of `contract.read_lines`, ready for `contract.parse_trace_lines` (after the caller
    quarantines the faults).

    Bad data never raises: it becomes a SourceFault. A span line may give several traces and
    faults; the OpenAI formats hold one input's records and yield its groups at the end
    (first-seen order, numbered by the group's first line), because several logged responses
    to one request are one trace with several candidates. Skipped non-GenAI spans are counted in
    `stats`."""
    stats = stats if stats is not None else SourceStats()
    if spec.format == "native":
        yield from lines
        return
    if spec.format in OPENAI_FORMATS:
        yield from _counted(_openai_lines(lines, spec), stats)
        return
    mapper = {"otlp_genai": _otlp_line, "openinference": _openinference_line,
              "jsonl_mapping": _mapping_line}.get(spec.format)
    if mapper is None:
        raise ValueError(f"unknown source format {spec.format!r}")  # a bad spec, not bad data

    yield from _counted(_each_record(
        lines, lambda obj, number, line: mapper(obj, line, spec, stats)), stats)


def _each_record(lines: Iterable[tuple[int, str | LineFault]],
                 handle: Callable[[dict[str, Any], int, str], Iterable[str | SourceFault]]
                 ) -> Iterator[tuple[int, str | LineFault | SourceFault]]:
    """`handle` over every line's object, under the rules every format shares: read faults
    pass through, a line that is not a JSON object is a fault, and whatever a mapping raises
    becomes a fault for that line only (bad data never stops a file)."""
    for number, line in lines:
        if isinstance(line, LineFault):
            yield number, line
            continue
        obj = _load(line)
        if isinstance(obj, SourceFault):
            yield number, obj
            continue
        try:
            for item in handle(obj, number, line):
                yield number, item
        except _Fault as err:
            yield number, SourceFault(str(err), line)
        except Exception as err:  # bad data must never stop a file
            yield number, SourceFault(f"could not be mapped ({type(err).__name__})", line)


def _counted(items: Iterator[tuple[int, Any]],
             stats: SourceStats) -> Iterator[tuple[int, Any]]:
    for number, item in items:
        if isinstance(item, str) and not isinstance(item, LineFault):
            stats.traces += 1
        else:
            stats.faults += 1
        yield number, item


def _load(line: str) -> Any:
    """The line's object, or a SourceFault whose reason holds no part of the line. Parsed as
    native lines are (`contract.loads_strict`): NaN, Infinity and a name repeated in one
    object are faults, never a value kept or dropped in silence."""
    try:
        obj = loads_strict(line)
    except json.JSONDecodeError as err:
        return SourceFault(json_error_reason(err), line)
    except (NonFiniteNumber, DuplicateKey) as err:
        return SourceFault(str(err), line)
    except ValueError:
        return SourceFault("not valid JSON (a number has more digits than the parser allows)",
                           line)
    except RecursionError:
        return SourceFault("not valid JSON (nested deeper than the parser allows)", line)
    if not isinstance(obj, dict):
        return SourceFault("a line must be a JSON object", line)
    return obj


def _emit(trace: dict[str, Any], spec: SourceSpec, line: str) -> str | SourceFault:
    for key, value in spec.defaults.items():
        if trace.get(key) is None:
            trace[key] = value
    try:
        text = json.dumps(trace, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return SourceFault("a mapped value cannot be written as JSON", line)
    if ("\\ud" in line or "\\uD" in line) and _SURROGATE.search(text):
        return SourceFault("a value holds a lone surrogate escape (not valid Unicode)", line)
    return text


# --- shared pieces ---------------------------------------------------------------------------


def _identifier(value: str, limit: int = 128) -> str:
    """`value` forced into the identifier shape: a source's model names and response ids are
    ids, so they are kept readable rather than hashed."""
    return _NOT_ID_CHAR.sub("_", value)[:limit] or "_"


def _hash_id(obj: Any) -> str:
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _iso_seconds(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Fault(f"{where} must be unix seconds (a number)")
    try:
        return datetime.fromtimestamp(value, UTC).isoformat()
    except (OverflowError, OSError, ValueError) as err:
        raise _Fault(f"{where} is out of range for unix seconds") from err


def _iso_nanos(value: int, where: str) -> str:
    if not value:
        raise _Fault(f"{where} is missing")
    try:
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value // 1000)
    except OverflowError as err:
        raise _Fault(f"{where} is out of range") from err
    return moment.isoformat()


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False,
                                                           sort_keys=True)


def _maybe_json(value: Any, where: str) -> Any:
    """A structured value that a span attribute may carry as JSON text."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except (ValueError, RecursionError) as err:
        raise _Fault(f"{where} is not valid JSON") from err


def _tool_calls(value: Any, where: str) -> list[dict[str, Any]]:
    """OpenAI-shaped tool calls in the native shape."""
    if not isinstance(value, list):
        raise _Fault(f"{where} must be a list")
    out = []
    for j, call in enumerate(value):
        spot = f"{where}[{j}]"
        if not isinstance(call, dict):
            raise _Fault(f"{spot} must be an object")
        function = call.get("function")
        if not isinstance(function, dict):
            raise _Fault(f"{spot}.function must be an object")
        name = function.get("name")
        if not isinstance(name, str):
            raise _Fault(f"{spot}.function.name must be a string")
        call_id = call.get("id")
        if not isinstance(call_id, str):
            raise _Fault(f"{spot}.id must be a string")
        arguments = function.get("arguments")
        out.append({"id": call_id, "type": "function",
                    "function": {"name": name,
                                 "arguments": "" if arguments is None else _json_text(arguments)}})
    return out


_TEXT_PART_TYPES = ("text", "input_text", "output_text")


def _content(value: Any, where: str, leftovers: list[Any]) -> str | None:
    """Message content as text: text parts joined by newlines; other parts (images, audio,
    files) go to `leftovers` so they are kept beside the trace."""
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise _Fault(f"{where} must be a string, a list of content parts or null")
    texts = []
    for k, part in enumerate(value):
        if isinstance(part, str):
            texts.append(part)
        elif not isinstance(part, dict):
            raise _Fault(f"{where}[{k}] must be an object")
        elif part.get("type") in _TEXT_PART_TYPES and isinstance(part.get("text"), str):
            texts.append(part["text"])
        else:
            leftovers.append({"part": k, **part})
    return "\n".join(texts)


def _chat_message(msg: Any, where: str, leftovers: list[Any]) -> dict[str, Any]:
    """An OpenAI-shaped chat message in the native message shape; fields it does not map go to
    `leftovers` tagged with the message's position."""
    if not isinstance(msg, dict):
        raise _Fault(f"{where} must be an object")
    role = msg.get("role")
    if role == "function":  # the deprecated function-calling role answers like a tool
        role = "tool"
    if role not in MESSAGE_ROLES:
        raise _Fault(f"{where}.role must be one of {', '.join(MESSAGE_ROLES)}")
    parts: list[Any] = []
    out: dict[str, Any] = {"role": role,
                           "content": _content(msg.get("content"), f"{where}.content", parts)}
    if msg.get("name") is not None:
        if not isinstance(msg["name"], str):
            raise _Fault(f"{where}.name must be a string")
        out["name"] = msg["name"]
    if msg.get("tool_calls"):
        out["tool_calls"] = _tool_calls(msg["tool_calls"], f"{where}.tool_calls")
    if msg.get("tool_call_id") is not None:
        if not isinstance(msg["tool_call_id"], str):
            raise _Fault(f"{where}.tool_call_id must be a string")
        out["tool_call_id"] = msg["tool_call_id"]
    rest = {k: v for k, v in msg.items()
            if k not in ("role", "content", "name", "tool_calls", "tool_call_id")}
    if msg.get("role") == "function":
        rest["role"] = "function"
    if parts:
        rest["content_parts"] = parts
    if rest:
        leftovers.append({"where": where, **rest})
    return out


def _chat_messages(value: Any, where: str, leftovers: list[Any]) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise _Fault(f"{where} must be a list")
    return [_chat_message(m, f"{where}[{i}]", leftovers) for i, m in enumerate(value)]


def _prompt(messages: list[dict[str, Any]], where: str) -> str:
    """The final user turn's text: what the candidates answer, even after tool turns."""
    for message in reversed(messages):
        if message["role"] == "user" and message.get("content"):
            return message["content"]
    raise _Fault(f"{where} has no user message with text")


def _answer_text(message: dict[str, Any]) -> str:
    """A candidate's text; a pure tool-call answer is rendered readably so it can be
    judged."""
    parts = [message["content"]] if message.get("content") else []
    parts += [f"call {c['function']['name']}({c['function']['arguments']})"
              for c in message.get("tool_calls", ())]
    return "\n".join(parts)


def _candidate(base: str, index: Any, model: Any, generation: dict[str, Any],
               message: dict[str, Any]) -> dict[str, Any]:
    suffix = f".{index}"
    return {
        "candidate_id": _identifier(base, 128 - len(suffix)) + suffix,
        "model_id": _identifier(model) if isinstance(model, str) and model else None,
        "generation": {k: v for k, v in generation.items() if v is not None} or None,
        "text": _answer_text(message),
    }


# --- openai_chat -----------------------------------------------------------------------------


@dataclass
class _OpenAIGroup:
    number: int
    line: str
    trace_id: str
    messages: list[dict[str, Any]]
    prompt: str
    created: list[float] = field(default_factory=list)
    candidates: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)


def _openai_lines(lines: Iterable[tuple[int, str | LineFault]],
                  spec: SourceSpec) -> Iterator[tuple[int, str | LineFault | SourceFault]]:
    groups: dict[tuple[str, str | None], _OpenAIGroup] = {}

    def record(obj: dict[str, Any], number: int, line: str) -> tuple[()]:
        _openai_record(obj, number, line, spec, groups)  # emitted once the file is read
        return ()

    yield from _each_record(lines, record)
    for group in groups.values():
        trace = {
            "trace_id": group.trace_id,
            "created_at": _iso_seconds(min(group.created), "response.created"),
            "prompt": group.prompt,
            "candidates": group.candidates,
            "messages": group.messages,
            **group.meta,
            "openai": group.extras,
        }
        yield group.number, _emit(trace, spec, group.line)


def _openai_record(obj: dict[str, Any], number: int, line: str, spec: SourceSpec,
                   groups: dict[tuple[str, str | None], _OpenAIGroup]) -> None:
    """One logged call, of either OpenAI API, into its group: a Chat Completions call
    (`request.messages`, `response.choices`) or a Responses API call (`request.input`,
    `response.output`), each also as a Batch API output line (the response under
    `response.body`, the request joined under `request` or `body`). Which one a line is, is
    read from the line itself, so one file may mix both."""
    req_key = "request" if "request" in obj else "body"
    request = obj.get(req_key)
    response = obj.get("response")
    if not isinstance(response, dict):
        raise _Fault("response must be an object")
    batch = ("body" in response and "choices" not in response
             and "output" not in response)
    if batch:  # a Batch API output line: {id, custom_id, response: {status_code, body}, error}
        if obj.get("error") is not None:
            raise _Fault("error is set (the batch request failed)")
        status = response.get("status_code")
        if status is not None and status != 200:
            raise _Fault("response.status_code is not 200 (the call failed)")
        completion, cwhere = response.get("body"), "response.body"
    else:
        completion, cwhere = response, "response"
    if not isinstance(completion, dict):
        raise _Fault(f"{cwhere} must be an object")
    if not isinstance(request, dict) or ("messages" not in request and "input" not in request):
        raise _Fault("request.messages (Chat Completions) or request.input (Responses API) is "
                     "missing (a logged call, or a Batch API output line joined with its "
                     "request, must carry the request under request or body)")
    model = request.get("model")
    if not isinstance(model, str):
        raise _Fault(f"{req_key}.model must be a string")
    call = (_chat_call if "messages" in request else _responses_call)(
        request, completion, req_key, cwhere)
    metadata = obj.get("metadata")
    meta: dict[str, Any] = {}
    if spec.metadata:
        if metadata is not None and not isinstance(metadata, dict):
            raise _Fault("metadata must be an object")
        for name, path in spec.metadata.items():
            value = _resolve(metadata or {}, path)
            if value is not _MISSING and value is not None:
                meta[name] = value
    own_id = meta.pop("trace_id", None)
    key = (call.canonical, own_id if isinstance(own_id, str) else None)
    group = groups.get(key)
    if group is None:
        trace_id = own_id if own_id is not None else f"openai:{call.canonical}"
        group = groups[key] = _OpenAIGroup(number, line, trace_id, call.messages, call.prompt,
                                           meta=meta)
        group.extras = {"model": model, "request": call.request_rest, "responses": []}
        if call.request_leftovers:
            group.extras["message_fields"] = call.request_leftovers
    group.created.append(call.created)
    group.candidates.extend(call.candidates)
    entry: dict[str, Any] = {"line": number, "request_key": req_key}
    entry.update({k: v for k, v in obj.items() if k not in (req_key, "response")})
    if batch:
        entry["response"] = {k: v for k, v in response.items() if k != "body"}
    entry.update(call.response_rest)
    group.extras["responses"].append(entry)


@dataclass
class _Call:
    """One logged call mapped, whichever API it went through. `canonical` names the request
    (model and conversation): several logged answers to one request are one trace."""

    messages: list[dict[str, Any]]
    prompt: str
    created: float
    candidates: list[dict[str, Any]]
    canonical: str
    request_rest: dict[str, Any]  # request fields not mapped, kept beside the trace
    request_leftovers: list[Any]  # message fields and content parts not mapped
    response_rest: dict[str, Any]  # response fields not mapped


def _response_head(response: dict[str, Any], where: str, created_key: str,
                   answers_key: str) -> tuple[float, str, list[Any]]:
    """(created, id, answers) of a logged response: the fields both APIs require, under their
    own names."""
    created = response.get(created_key)
    _iso_seconds(created, f"{where}.{created_key}")
    response_id = response.get("id")
    if not isinstance(response_id, str) or not response_id:
        raise _Fault(f"{where}.id must be a non-empty string")
    answers = response.get(answers_key)
    if not isinstance(answers, list):
        raise _Fault(f"{where}.{answers_key} must be a list")
    return created, response_id, answers


def _chat_call(request: dict[str, Any], completion: dict[str, Any], req_key: str,
               cwhere: str) -> _Call:
    leftovers: list[Any] = []  # of the request's messages (the same for the whole group)
    messages = _chat_messages(request["messages"], f"{req_key}.messages", leftovers)
    prompt = _prompt(messages, f"{req_key}.messages")
    created, response_id, choices = _response_head(completion, cwhere, "created", "choices")
    params = {k: request[k] for k in _OPENAI_GENERATION_PARAMS if k in request}
    candidates, choice_rest, answer_left = [], [], []
    for i, choice in enumerate(choices):
        spot = f"{cwhere}.choices[{i}]"
        if not isinstance(choice, dict):
            raise _Fault(f"{spot} must be an object")
        if not isinstance(choice.get("message"), dict):
            raise _Fault(f"{spot}.message must be an object")
        message = _chat_message(choice["message"], f"{spot}.message", answer_left)
        index = choice.get("index", i)
        if isinstance(index, bool) or not isinstance(index, int):
            raise _Fault(f"{spot}.index must be an integer")
        generation = {"finish_reason": choice.get("finish_reason"),
                      "usage": completion.get("usage"), **params}
        candidates.append(_candidate(response_id, index, completion.get("model"), generation,
                                     message))
        rest = {k: v for k, v in choice.items() if k not in ("index", "message", "finish_reason")}
        if rest:
            choice_rest.append({"index": index, **rest})
    response_rest = {k: v for k, v in completion.items()
                     if k not in ("created", "choices", "usage")}
    if choice_rest:
        response_rest["choices"] = choice_rest
    if answer_left:
        response_rest["message_fields"] = answer_left
    return _Call(messages, prompt, created, candidates,
                 _hash_id({"model": request["model"], "messages": request["messages"]}),
                 {k: v for k, v in request.items()
                  if k not in ("model", "messages", *_OPENAI_GENERATION_PARAMS)},
                 leftovers, response_rest)


# --- the Responses API -----------------------------------------------------------------------

_RESPONSES_GENERATION_PARAMS = ("temperature", "top_p", "max_output_tokens", "reasoning",
                                "top_logprobs", "seed")
_RESPONSES_UNFINISHED = ("failed", "cancelled", "queued", "in_progress")
_RESPONSES_TEXT_PARTS = {"input_text": "text", "output_text": "text", "text": "text",
                         "refusal": "refusal"}


def _responses_content(value: Any, where: str, leftovers: list[Any]) -> str | None:
    """A Responses API message's content as text: input/output text parts and refusals
    joined by newlines; other parts (images, files, audio) go to `leftovers`, tagged with
    their position."""
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise _Fault(f"{where} must be a string, a list of content parts or null")
    texts, kept = [], []
    for k, part in enumerate(value):
        if not isinstance(part, dict):
            raise _Fault(f"{where}[{k}] must be an object")
        field_name = _RESPONSES_TEXT_PARTS.get(part.get("type"))
        if field_name is not None and isinstance(part.get(field_name), str):
            texts.append(part[field_name])
            rest = {n: v for n, v in part.items() if n not in ("type", field_name)
                    and v not in (None, [], {})}  # empty annotations / logprobs carry nothing
            if rest:
                kept.append({"part": k, "type": part["type"], **rest})
        else:
            kept.append({"part": k, **part})
    if kept:
        leftovers.append({"where": where, "content_parts": kept})
    return "\n".join(texts)


def _function_call(item: dict[str, Any], where: str) -> dict[str, Any]:
    name, call_id = item.get("name"), item.get("call_id")
    if not isinstance(name, str):
        raise _Fault(f"{where}.name must be a string")
    if not isinstance(call_id, str):
        raise _Fault(f"{where}.call_id must be a string")
    arguments = item.get("arguments")
    return {"id": call_id, "type": "function",
            "function": {"name": name,
                         "arguments": "" if arguments is None else _json_text(arguments)}}


def _responses_items(items: list[Any], where: str, leftovers: list[Any],
                     roles: tuple[str, ...]) -> list[dict[str, Any]]:
    """Input or output items as native messages, in order: a message item keeps its role
    (of `roles`), consecutive function calls become one assistant turn's tool calls, a
    function call's output a `tool` turn. Items that are not conversation (reasoning, web or
    file search calls, item references, ...) go to `leftovers` whole, with their position."""
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        spot = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise _Fault(f"{spot} must be an object")
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            role = item.get("role")
            if role not in roles:
                raise _Fault(f"{spot}.role must be one of {', '.join(roles)}")
            parts: list[Any] = []
            messages.append({"role": role, "content": _responses_content(
                item.get("content"), f"{spot}.content", parts)})
            rest = {k: v for k, v in item.items() if k not in ("type", "role", "content")}
            if rest:
                leftovers.append({"where": spot, **rest})
            leftovers.extend(parts)
        elif kind == "function_call":
            call = _function_call(item, spot)
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and last.get("tool_calls") \
                    and not last.get("content"):
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
            rest = {k: v for k, v in item.items()
                    if k not in ("type", "name", "call_id", "arguments")}
            if rest:
                leftovers.append({"where": spot, **rest})
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if not isinstance(call_id, str):
                raise _Fault(f"{spot}.call_id must be a string")
            parts = []
            output = item.get("output")
            messages.append({"role": "tool", "tool_call_id": call_id,
                             "content": _responses_content(
                                 output if isinstance(output, str | list) or output is None
                                 else _json_text(output), f"{spot}.output", parts)})
            rest = {k: v for k, v in item.items() if k not in ("type", "call_id", "output")}
            if rest:
                leftovers.append({"where": spot, **rest})
            leftovers.extend(parts)
        else:
            leftovers.append({"where": spot, **item})
    return messages


def _responses_call(request: dict[str, Any], response: dict[str, Any], req_key: str,
                    cwhere: str) -> _Call:
    """A Responses API call: `instructions` is the system turn, `input` (a string or a list
    of items) the conversation, and the response's `output` items one candidate (a
    message's text, refusals and function calls together). A response that did not finish
    (failed, cancelled, still queued or running) has no answer to review and is a fault; an
    incomplete one (cut at max_output_tokens, or filtered) is kept, with the reason in its
    generation."""
    leftovers: list[Any] = []
    messages: list[dict[str, Any]] = []
    instructions = request.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise _Fault(f"{req_key}.instructions must be a string or null")
        messages.append({"role": "system", "content": instructions})
    given = request["input"]
    if isinstance(given, str):
        messages.append({"role": "user", "content": given})
    elif isinstance(given, list):
        messages += _responses_items(given, f"{req_key}.input", leftovers,
                                     ("user", "system", "developer", "assistant"))
    else:
        raise _Fault(f"{req_key}.input must be a string or a list of items")
    prompt = _prompt(messages, f"{req_key}.input")
    status = response.get("status")
    if status in _RESPONSES_UNFINISHED:
        raise _Fault(f"{cwhere}.status is {status} (no finished answer)")
    if response.get("error") is not None:
        raise _Fault(f"{cwhere}.error is set (the call failed)")
    created, response_id, output = _response_head(response, cwhere, "created_at", "output")
    answer_left: list[Any] = []
    turns = _responses_items(output, f"{cwhere}.output", answer_left, ("assistant",))
    if any(t["role"] != "assistant" for t in turns) or not turns:
        raise _Fault(f"{cwhere}.output has no assistant message or function call")
    answer = {"role": "assistant",
              "content": "\n".join(t["content"] for t in turns if t.get("content")) or None,
              "tool_calls": [c for t in turns for c in t.get("tool_calls", ())]}
    params = {k: request[k] for k in _RESPONSES_GENERATION_PARAMS if k in request}
    incomplete = response.get("incomplete_details")
    generation = {"status": status,
                  "incomplete_reason": incomplete.get("reason")
                  if isinstance(incomplete, dict) else None,
                  "usage": response.get("usage"), **params}
    candidate = _candidate(response_id, 0, response.get("model"), generation, answer)
    response_rest = {k: v for k, v in response.items()
                     if k not in ("created_at", "output", "usage", "status",
                                  "incomplete_details")}
    if answer_left:
        response_rest["output_fields"] = answer_left
    return _Call(messages, prompt, created, [candidate],
                 _hash_id({"model": request["model"], "instructions": instructions,
                           "input": given}),
                 {k: v for k, v in request.items()
                  if k not in ("model", "instructions", "input", *_RESPONSES_GENERATION_PARAMS)},
                 leftovers, response_rest)


# --- OTLP/JSON -------------------------------------------------------------------------------


@dataclass
class _Span:
    """One span of an OTLP/JSON line, in plain Python values."""

    position: int
    trace_id: str
    span_id: str
    start_ns: int
    attributes: dict[str, Any]
    events: list[tuple[str, int, dict[str, Any]]]
    other: dict[str, Any]


def _any_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _any_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return getattr(value, kind)


def _attrs(items: Any) -> dict[str, Any]:
    return {kv.key: _any_value(kv.value) for kv in items}


def _hex_to_base64(obj: dict[str, Any], key: str, where: str) -> None:
    """OTLP/JSON writes ids as hex, the protobuf JSON mapping reads bytes as base64."""
    value = obj.get(key)
    if not isinstance(value, str):
        return
    if len(value) % 2 or not _HEX.fullmatch(value):
        raise _Fault(f"{where}.{key} must be hex digits")
    obj[key] = base64.b64encode(binascii.unhexlify(value)).decode("ascii")


def _otlp_spans(obj: dict[str, Any]) -> Iterator[_Span]:
    """The spans of an ExportTraceServiceRequest, checked by its protobuf definition."""
    copy = json.loads(json.dumps(obj))
    position = 0
    for r, resource_spans in enumerate(_list(copy.get("resourceSpans"))):
        for s, scope_spans in enumerate(_list(_get(resource_spans, "scopeSpans"))):
            for k, span in enumerate(_list(_get(scope_spans, "spans"))):
                if not isinstance(span, dict):
                    continue
                where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{k}]"
                for key in ("traceId", "spanId", "parentSpanId"):
                    _hex_to_base64(span, key, where)
                for n, link in enumerate(_list(span.get("links"))):
                    if isinstance(link, dict):
                        for key in ("traceId", "spanId"):
                            _hex_to_base64(link, key, f"{where}.links[{n}]")
    try:
        request = json_format.ParseDict(copy, ExportTraceServiceRequest(),
                                        ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, ValueError) as err:
        # only the parser's field chain: the rest of its message may quote the line
        chain = ".".join(_PARSE_FIELD.findall(str(err)))
        detail = f" at {chain}" if chain else ""
        raise _Fault(f"not an OTLP/JSON ExportTraceServiceRequest (the protobuf mapping "
                     f"rejects a value{detail})") from err
    for resource_spans in request.resource_spans:
        resource = _attrs(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope = {"name": scope_spans.scope.name, "version": scope_spans.scope.version}
            for span in scope_spans.spans:
                other: dict[str, Any] = {"name": span.name,
                                         "kind": Span.SpanKind.Name(span.kind)}
                if span.parent_span_id:
                    other["parent_span_id"] = span.parent_span_id.hex()
                if span.end_time_unix_nano:
                    other["end_time_unix_nano"] = str(span.end_time_unix_nano)
                if span.HasField("status"):
                    other["status"] = json_format.MessageToDict(span.status)
                if span.links:
                    other["links"] = [{"trace_id": link.trace_id.hex(),
                                       "span_id": link.span_id.hex(),
                                       "attributes": _attrs(link.attributes)}
                                      for link in span.links]
                if resource:
                    other["resource"] = resource
                if scope["name"] or scope["version"]:
                    other["scope"] = scope
                yield _Span(position, span.trace_id.hex(), span.span_id.hex(),
                            span.start_time_unix_nano, _attrs(span.attributes),
                            [(e.name, e.time_unix_nano, _attrs(e.attributes))
                             for e in span.events], other)
                position += 1


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _get(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None


def _span_lines(obj: dict[str, Any], line: str, spec: SourceSpec, stats: SourceStats,
                spans: Iterable[_Span], mapper: Any, key: str) -> Iterator[str | SourceFault]:
    """A trace or a fault per chat span; other spans are counted as skipped."""
    for span in spans:
        stats.spans_seen += 1
        try:
            if not span.trace_id or not span.span_id:
                raise _Fault("traceId and spanId are required")
            trace = mapper(span, key)
            if trace is None:
                stats.spans_skipped += 1
                continue
            yield _emit(trace, spec, line)
        except _Fault as err:
            yield SourceFault(f"span {span.position}: {err}", line)
        except Exception as err:  # one bad span must not stop the others
            yield SourceFault(f"span {span.position}: could not be mapped "
                              f"({type(err).__name__})", line)


def _otlp_line(obj: dict[str, Any], line: str, spec: SourceSpec,
               stats: SourceStats) -> Iterator[str | SourceFault]:
    if "resourceSpans" not in obj:
        raise _Fault("resourceSpans is missing (not an OTLP/JSON ExportTraceServiceRequest)")
    yield from _span_lines(obj, line, spec, stats, _otlp_spans(obj), _genai_trace, "otel")


def _genai_parts_message(msg: Any, where: str, leftovers: list[Any]) -> list[dict[str, Any]]:
    """A GenAI semconv message ({role, parts}) as native messages; a tool message answering
    several calls becomes one native tool message per call (native has one tool_call_id)."""
    if not isinstance(msg, dict):
        raise _Fault(f"{where} must be an object")
    role = msg.get("role")
    if role not in MESSAGE_ROLES:
        raise _Fault(f"{where}.role must be one of {', '.join(MESSAGE_ROLES)}")
    parts = msg.get("parts")
    if not isinstance(parts, list):
        raise _Fault(f"{where}.parts must be a list")
    texts, calls, results = [], [], []
    for k, part in enumerate(parts):
        spot = f"{where}.parts[{k}]"
        if not isinstance(part, dict):
            raise _Fault(f"{spot} must be an object")
        kind = part.get("type")
        if kind == "text":
            if not isinstance(part.get("content"), str):
                raise _Fault(f"{spot}.content must be a string")
            texts.append(part["content"])
        elif kind == "tool_call":
            if not isinstance(part.get("name"), str):
                raise _Fault(f"{spot}.name must be a string")
            arguments = part.get("arguments")
            calls.append({"id": part.get("id") if isinstance(part.get("id"), str) else "",
                          "type": "function",
                          "function": {"name": part["name"],
                                       "arguments": "" if arguments is None
                                       else _json_text(arguments)}})
        elif kind == "tool_call_response":
            response = part.get("response")
            results.append({"role": "tool",
                            "content": None if response is None else _json_text(response),
                            "tool_call_id": part.get("id") if isinstance(part.get("id"), str)
                            else ""})
        else:
            leftovers.append({"where": spot, **part})
    rest = {k: v for k, v in msg.items() if k not in ("role", "parts", "name", "finish_reason")}
    if rest:
        leftovers.append({"where": where, **rest})
    out: list[dict[str, Any]] = []
    if texts or calls or not results:
        message: dict[str, Any] = {"role": role, "content": "\n".join(texts) if texts else None}
        if isinstance(msg.get("name"), str):
            message["name"] = msg["name"]
        if calls:
            message["tool_calls"] = calls
        out.append(message)
    return out + results


def _genai_trace(span: _Span, key: str) -> dict[str, Any] | None:
    attrs = dict(span.attributes)
    leftovers: list[Any] = []
    events_left, message_events, choice_events = [], [], []
    for name, time_ns, event_attrs in span.events:
        if name in _EVENT_ROLES:
            message_events.append((name, event_attrs))
        elif name == _CHOICE_EVENT:
            choice_events.append(event_attrs)
        else:
            events_left.append({"name": name, "time_unix_nano": str(time_ns),
                                "attributes": event_attrs})
    raw_input = attrs.pop(gen_ai.GEN_AI_INPUT_MESSAGES, None)
    raw_output = attrs.pop(gen_ai.GEN_AI_OUTPUT_MESSAGES, None)
    raw_system = attrs.pop(gen_ai.GEN_AI_SYSTEM_INSTRUCTIONS, None)
    if raw_input is None and raw_output is None and not message_events and not choice_events:
        return None  # no GenAI chat content: an HTTP span, a tool span, content capture off
    messages: list[dict[str, Any]] = []
    if raw_system is not None:
        system = _maybe_json(raw_system, gen_ai.GEN_AI_SYSTEM_INSTRUCTIONS)
        if isinstance(system, str):
            system = [{"type": "text", "content": system}]
        messages += _genai_parts_message({"role": "system", "parts": system},
                                         gen_ai.GEN_AI_SYSTEM_INSTRUCTIONS, leftovers)
    if raw_input is not None:
        value = _maybe_json(raw_input, gen_ai.GEN_AI_INPUT_MESSAGES)
        if not isinstance(value, list):
            raise _Fault(f"{gen_ai.GEN_AI_INPUT_MESSAGES} must be a list of messages")
        for i, msg in enumerate(value):
            messages += _genai_parts_message(msg, f"{gen_ai.GEN_AI_INPUT_MESSAGES}[{i}]",
                                             leftovers)
    else:
        for i, (name, event_attrs) in enumerate(message_events):
            where = f"event {i} ({name})"
            body = _event_body(event_attrs, where)
            content = body.get("content")
            if isinstance(content, dict):  # a structured tool result
                content = _json_text(content)
            msg = {"role": _EVENT_ROLES[name], "content": content}
            if body.get("tool_calls") is not None:
                msg["tool_calls"] = _maybe_json(body["tool_calls"], f"{where}.tool_calls")
            if name == "gen_ai.tool.message" and body.get("id") is not None:
                msg["tool_call_id"] = body["id"]
            messages.append(_chat_message(msg, where, leftovers))
            rest = {k: v for k, v in body.items() if k not in ("content", "tool_calls", "id",
                                                                "role")}
            if rest:
                leftovers.append({"where": where, **rest})
    outputs: list[tuple[Any, Any, dict[str, Any]]] = []  # (index, finish_reason, message)
    if raw_output is not None:
        value = _maybe_json(raw_output, gen_ai.GEN_AI_OUTPUT_MESSAGES)
        if not isinstance(value, list):
            raise _Fault(f"{gen_ai.GEN_AI_OUTPUT_MESSAGES} must be a list of messages")
        for i, msg in enumerate(value):
            where = f"{gen_ai.GEN_AI_OUTPUT_MESSAGES}[{i}]"
            native = _genai_parts_message(msg, where, leftovers)
            outputs.append((i, msg.get("finish_reason"), native[0]))
    else:
        for i, event_attrs in enumerate(choice_events):
            where = f"event {_CHOICE_EVENT} {i}"
            body = _event_body(event_attrs, where)
            message = _maybe_json(body.get("message", {}), f"{where}.message")
            if not isinstance(message, dict):
                raise _Fault(f"{where}.message must be an object")
            message = {"role": "assistant", **message}
            if message.get("tool_calls") is not None:
                message["tool_calls"] = _maybe_json(message["tool_calls"],
                                                    f"{where}.message.tool_calls")
            outputs.append((body.get("index", i), body.get("finish_reason"),
                            _chat_message(message, f"{where}.message", leftovers)))
    prompt = _prompt(messages, gen_ai.GEN_AI_INPUT_MESSAGES if raw_input is not None
                     else "the gen_ai.*.message events")
    finish_reasons = attrs.pop(gen_ai.GEN_AI_RESPONSE_FINISH_REASONS, None)
    request_model = attrs.pop(gen_ai.GEN_AI_REQUEST_MODEL, None)
    response_model = attrs.pop(gen_ai.GEN_AI_RESPONSE_MODEL, None)
    response_id = attrs.pop(gen_ai.GEN_AI_RESPONSE_ID, None)
    params = {short: attrs.pop(name) for name, short in _GEN_AI_REQUEST_PARAMS.items()
              if name in attrs}
    usage = {short: attrs.pop(name) for name, short in _GEN_AI_USAGE.items() if name in attrs}
    base = response_id if isinstance(response_id, str) and response_id else span.span_id
    candidates = []
    for position, (index, finish, message) in enumerate(outputs):
        if finish is None and isinstance(finish_reasons, list) and position < len(
                finish_reasons):
            finish = finish_reasons[position]
        generation = {"finish_reason": finish, "usage": usage or None, **params}
        candidates.append(_candidate(base, index, response_model or request_model, generation,
                                     message))
    extras = dict(span.other)
    if request_model is not None:
        extras["request_model"] = request_model
    if response_id is not None:
        extras["response_id"] = response_id
    if attrs:
        extras["attributes"] = attrs
    if events_left:
        extras["events"] = events_left
    if leftovers:
        extras["message_fields"] = leftovers
    return {
        "trace_id": f"otel:{span.trace_id}:{span.span_id}",
        "created_at": _iso_nanos(span.start_ns, "startTimeUnixNano"),
        "prompt": prompt,
        "candidates": candidates,
        "messages": messages,
        key: extras,
    }


def _event_body(attrs: dict[str, Any], where: str) -> dict[str, Any]:
    """An event's body: the published events carry it as the log body; exported as span
    events, instrumentations put it in a "body" attribute or spread it over the attributes."""
    body = attrs.get("body")
    if body is not None:
        body = _maybe_json(body, f"{where}.body")
        if not isinstance(body, dict):
            raise _Fault(f"{where}.body must be an object")
        return body
    return {k: v for k, v in attrs.items()
            if k not in (gen_ai.GEN_AI_SYSTEM, gen_ai.GEN_AI_PROVIDER_NAME)}


# --- OpenInference ---------------------------------------------------------------------------


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    """Nested attributes (Phoenix exports, kvlist values) as the flat dotted keys the
    OpenInference convention defines, so one reader serves both spellings."""
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for i, item in enumerate(value):
            _flatten(item, f"{prefix}.{i}", out)
    else:
        out[prefix] = value


def _indexed(attrs: dict[str, Any], prefix: str) -> dict[int, dict[str, Any]]:
    """`prefix.<i>.<rest>` keys grouped by i (and popped from `attrs`)."""
    out: dict[int, dict[str, Any]] = {}
    head = prefix + "."
    for key in [k for k in attrs if k.startswith(head)]:
        index, _, rest = key[len(head):].partition(".")
        if index.isdigit() and rest:
            out.setdefault(int(index), {})[rest] = attrs.pop(key)
    return dict(sorted(out.items()))


def _oi_message(flat: dict[str, Any], where: str, leftovers: list[Any],
                role: str | None = None) -> dict[str, Any]:
    flat = dict(flat)
    msg: dict[str, Any] = {"role": flat.pop(MessageAttributes.MESSAGE_ROLE, None) or role}
    content = flat.pop(MessageAttributes.MESSAGE_CONTENT, None)
    contents = _indexed(flat, MessageAttributes.MESSAGE_CONTENTS)
    if content is None and contents:
        content = [{"type": item.pop(MessageContentAttributes.MESSAGE_CONTENT_TYPE, None),
                    "text": item.pop(MessageContentAttributes.MESSAGE_CONTENT_TEXT, None),
                    **item} for item in contents.values()]
    msg["content"] = content
    calls = []
    for call in _indexed(flat, MessageAttributes.MESSAGE_TOOL_CALLS).values():
        calls.append({"id": call.pop(ToolCallAttributes.TOOL_CALL_ID, ""),
                      "type": "function",
                      "function": {
                          "name": call.pop(ToolCallAttributes.TOOL_CALL_FUNCTION_NAME, None),
                          "arguments": call.pop(
                              ToolCallAttributes.TOOL_CALL_FUNCTION_ARGUMENTS_JSON, None)}})
        if call:
            leftovers.append({"where": f"{where}.tool_calls", **call})
    if calls:
        msg["tool_calls"] = calls
    for key, name in ((MessageAttributes.MESSAGE_NAME, "name"),
                      (MessageAttributes.MESSAGE_TOOL_CALL_ID, "tool_call_id")):
        if key in flat:
            msg[name] = flat.pop(key)
    if flat:
        leftovers.append({"where": where, **flat})
    return _chat_message(msg, where, leftovers)


def _oi_trace(span: _Span, key: str) -> dict[str, Any] | None:
    attrs: dict[str, Any] = {}
    _flatten(span.attributes, "", attrs)
    kind = attrs.get(SpanAttributes.OPENINFERENCE_SPAN_KIND)
    if not isinstance(kind, str) or kind.upper() != OpenInferenceSpanKindValues.LLM.value:
        return None
    inputs = _indexed(attrs, SpanAttributes.LLM_INPUT_MESSAGES)
    if not inputs:
        return None  # an LLM span without chat messages (content capture off, completions)
    attrs.pop(SpanAttributes.OPENINFERENCE_SPAN_KIND)
    leftovers: list[Any] = []
    messages = [_oi_message(m, f"{SpanAttributes.LLM_INPUT_MESSAGES}.{i}", leftovers)
                for i, m in inputs.items()]
    outputs = [(i, _oi_message(m, f"{SpanAttributes.LLM_OUTPUT_MESSAGES}.{i}", leftovers,
                               "assistant"))
               for i, m in _indexed(attrs, SpanAttributes.LLM_OUTPUT_MESSAGES).items()]
    prompt = _prompt(messages, SpanAttributes.LLM_INPUT_MESSAGES)
    params: Any = {}
    if SpanAttributes.LLM_INVOCATION_PARAMETERS in attrs:
        params = _maybe_json(attrs.pop(SpanAttributes.LLM_INVOCATION_PARAMETERS),
                             SpanAttributes.LLM_INVOCATION_PARAMETERS)
        if not isinstance(params, dict):
            raise _Fault(f"{SpanAttributes.LLM_INVOCATION_PARAMETERS} must be a JSON object")
    model = attrs.pop(SpanAttributes.LLM_MODEL_NAME, None)
    finish = attrs.pop(SpanAttributes.LLM_FINISH_REASON, None)
    usage = {short: attrs.pop(name) for name, short in _OI_USAGE.items() if name in attrs}
    candidates = [
        _candidate(span.span_id, i, model,
                   {"finish_reason": finish, "usage": usage or None, **params}, message)
        for i, message in outputs]
    extras = dict(span.other)
    if attrs:
        extras["attributes"] = attrs
    if span.events:
        extras["events"] = [{"name": n, "time_unix_nano": str(t), "attributes": a}
                            for n, t, a in span.events]
    if leftovers:
        extras["message_fields"] = leftovers
    return {
        "trace_id": f"otel:{span.trace_id}:{span.span_id}",
        "created_at": _iso_nanos(span.start_ns, "start time"),
        "prompt": prompt,
        "candidates": candidates,
        "messages": messages,
        key: extras,
    }


def _flat_span(obj: dict[str, Any]) -> _Span:
    """A Phoenix-style span object: {name, context: {trace_id, span_id}, start_time,
    attributes}."""
    context = obj.get("context")
    if not isinstance(context, dict):
        raise _Fault("context must be an object")
    ids = []
    for name in ("trace_id", "span_id"):
        value = context.get(name)
        if not isinstance(value, str) or not value or not _HEX.fullmatch(value):
            raise _Fault(f"context.{name} must be a hex string")
        ids.append(value.lower())
    start = obj.get("start_time")
    if not isinstance(start, str):
        raise _Fault("start_time must be an ISO-8601 string")
    try:
        moment = datetime.fromisoformat(start.replace("Z", "+00:00"))
    except ValueError as err:
        raise _Fault("start_time is not an ISO-8601 timestamp") from err
    if moment.tzinfo is None:
        raise _Fault("start_time has no UTC offset")
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    nanos = (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000
    attributes = obj.get("attributes")
    if not isinstance(attributes, dict):
        raise _Fault("attributes must be an object")
    events = []
    for i, event in enumerate(_list(obj.get("events"))):
        if not isinstance(event, dict):
            raise _Fault(f"events[{i}] must be an object")
        events.append((str(event.get("name")), 0, {k: v for k, v in event.items()
                                                    if k != "name"}))
    other = {k: v for k, v in obj.items() if k not in ("context", "start_time", "attributes",
                                                       "events")}
    other.update({f"context.{k}": v for k, v in context.items()
                  if k not in ("trace_id", "span_id")})
    return _Span(0, ids[0], ids[1], nanos, attributes, events, other)


def _openinference_line(obj: dict[str, Any], line: str, spec: SourceSpec,
                        stats: SourceStats) -> Iterator[str | SourceFault]:
    if "resourceSpans" in obj:
        spans: Iterable[_Span] = _otlp_spans(obj)
    elif "context" in obj and "attributes" in obj:
        spans = [_flat_span(obj)]
    else:
        raise _Fault("not an OTLP/JSON ExportTraceServiceRequest (resourceSpans) or a span "
                     "object (context, attributes)")
    yield from _span_lines(obj, line, spec, stats, spans, _oi_trace, "openinference")


# --- jsonl_mapping ---------------------------------------------------------------------------


def _steps(path: str) -> list[str | int]:
    return [int(index) if index else key for key, index in _PATH_STEP.findall(path)]


def _resolve(obj: Any, path: str) -> Any:
    value = obj
    for step in _steps(path):
        if isinstance(step, int):
            if not isinstance(value, list) or step >= len(value):
                return _MISSING
            value = value[step]
        else:
            if not isinstance(value, dict) or step not in value:
                return _MISSING
            value = value[step]
    return value


def _remove(obj: dict[str, Any], path: str) -> None:
    """Drop a mapped path from the leftover copy; a path through a list keeps the list whole
    (its other items are not mapped)."""
    steps = _steps(path)
    if any(isinstance(s, int) for s in steps):
        return
    parents = [obj]
    for step in steps[:-1]:
        nxt = parents[-1].get(step)
        if not isinstance(nxt, dict):
            return
        parents.append(nxt)
    parents[-1].pop(steps[-1], None)
    for depth in range(len(parents) - 1, 0, -1):  # prune objects the removal left empty
        if parents[depth]:
            break
        parents[depth - 1].pop(steps[depth - 1], None)


_REQUIRED_MAPPED = ("trace_id", "created_at", "prompt")


def _mapping_line(obj: dict[str, Any], line: str, spec: SourceSpec,
                  stats: SourceStats) -> Iterator[str | SourceFault]:
    trace: dict[str, Any] = {}
    consumed: list[str] = []
    leftovers: list[Any] = []
    for name, path in spec.fields.items():
        value = _resolve(obj, path)
        if value is _MISSING or value is None:
            if name in _REQUIRED_MAPPED:
                raise _Fault(f"{path} (mapped to {name}) is missing")
            continue
        if name == "created_at" and not isinstance(value, str):
            value = _iso_seconds(value, path)
        elif name == "trace_id" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        elif name == "messages":
            value = _chat_messages(value, path, leftovers)
        elif name == "candidates":
            value, whole = _mapped_candidates(value, path, spec.candidate_fields)
            if not whole:  # some candidate fields are not mapped: keep the list in "source"
                trace[name] = value
                continue
        trace[name] = value
        consumed.append(path)
    if "prompt" not in trace:
        trace["prompt"] = _prompt(trace.get("messages", []), spec.fields.get("messages", ""))
    if "trace_id" not in trace:
        trace["trace_id"] = f"jsonl:{_hash_id(obj)}"
    rest = json.loads(json.dumps(obj))
    for path in consumed:
        _remove(rest, path)
    if leftovers:
        rest["message_fields"] = leftovers
    if rest:
        trace["source"] = rest
    yield _emit(trace, spec, line)


def _mapped_candidates(value: Any, path: str,
                       sub: Mapping[str, str]) -> tuple[list[dict[str, Any]], bool]:
    """Candidates from a list of strings (c0, c1, ...) or of objects mapped by
    `candidate_fields`; the flag says whether the mapping used the whole list."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise _Fault(f"{path} must be a list of strings or objects")
    fields = {name: sub.get(name, name) for name in CANDIDATE_FIELDS}
    out, whole = [], True
    for i, item in enumerate(value):
        spot = f"{path}[{i}]"
        if isinstance(item, str):
            out.append({"candidate_id": f"c{i}", "model_id": None, "text": item})
            continue
        if not isinstance(item, dict):
            raise _Fault(f"{spot} must be a string or an object")
        text = _resolve(item, fields["text"])
        if not isinstance(text, str):
            raise _Fault(f"{spot}.{fields['text']} (mapped to text) must be a string")
        cid = _resolve(item, fields["candidate_id"])
        cid = f"c{i}" if cid is _MISSING or cid is None else cid
        if isinstance(cid, int) and not isinstance(cid, bool):
            cid = str(cid)
        model = _resolve(item, fields["model_id"])
        generation = _resolve(item, fields["generation"])
        out.append({"candidate_id": cid,
                    "model_id": None if model is _MISSING else model,
                    "generation": None if generation is _MISSING else generation,
                    "text": text})
        rest = json.loads(json.dumps(item))
        for sub_path in fields.values():
            _remove(rest, sub_path)
        whole = whole and not rest
    return out, whole
