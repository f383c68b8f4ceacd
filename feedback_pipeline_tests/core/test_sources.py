import json
import re

import pytest

from feedback_pipeline.core.contract import (
    IDENTIFIER_PATTERN,
    LineFault,
    parse_trace_lines,
    read_lines,
    validate_trace,
)
from feedback_pipeline.core.sources import (
    SOURCE_FORMATS,
    SourceFault,
    SourceSpec,
    SourceStats,
    native_lines,
    parse_source_spec,
)

SECRET = "sk-proj-" + "Abc123XyZ9" * 4  # a planted key: no reason may ever repeat it

SYSTEM = "You are a weather assistant."
FIRST_USER = "What's the weather in Paris?"
TOOL_RESULT = '{"temp_c": 12, "sky": "rain"}'
LAST_USER = "And tomorrow, should I take an umbrella?"
ARGS = '{"city": "Paris"}'

# The multi-turn conversation every format carries: system, user, assistant tool call, tool
# result, user. The candidates answer the last user turn.
OPENAI_MESSAGES = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": [{"type": "text", "text": "What's the weather"},
                                 {"type": "text", "text": "in Paris?"}]},
    {"role": "assistant", "content": None,
     "tool_calls": [{"id": "call_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": ARGS}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": TOOL_RESULT},
    {"role": "user", "content": LAST_USER},
]
EXPECTED_ROLES = ["system", "user", "assistant", "tool", "user"]


def run(lines, spec, stats=None):
    return list(native_lines(list(enumerate(lines, start=1)), spec, stats))


def traces(out):
    """The produced traces, each checked against the contract."""
    found = []
    for _, item in out:
        assert isinstance(item, str), item
        obj = json.loads(item)
        validate_trace(obj)
        found.append(obj)
    return found


def faults(out):
    return [(n, item) for n, item in out if isinstance(item, SourceFault)]


def assert_conversation(messages, first_user="What's the weather\nin Paris?"):
    assert [m["role"] for m in messages] == EXPECTED_ROLES
    assert messages[0]["content"] == SYSTEM
    assert messages[1]["content"] == first_user
    assert messages[2]["tool_calls"] == [{"id": "call_1", "type": "function",
                                          "function": {"name": "get_weather",
                                                       "arguments": ARGS}}]
    assert messages[3]["tool_call_id"] == "call_1"
    assert json.loads(messages[3]["content"]) == json.loads(TOOL_RESULT)
    assert messages[4]["content"] == LAST_USER


# ---- openai_chat ----------------------------------------------------------------------------


def completion(response_id, created, choices, model="gpt-4o-2024-08-06"):
    return {"id": response_id, "object": "chat.completion", "created": created, "model": model,
            "system_fingerprint": "fp_44709d6fcb",
            "choices": [{"index": i, "message": msg, "logprobs": None, "finish_reason": finish}
                        for i, (msg, finish) in enumerate(choices)],
            "usage": {"prompt_tokens": 81, "completion_tokens": 17, "total_tokens": 98}}


REQUEST = {"model": "gpt-4o", "messages": OPENAI_MESSAGES, "temperature": 0.7, "n": 2,
           "tools": [{"type": "function", "function": {"name": "get_weather",
                                                      "parameters": {"type": "object"}}}]}
ANSWER_A = {"role": "assistant", "content": "Yes, rain is likely tomorrow.", "refusal": None}
ANSWER_B = {"role": "assistant", "content": [{"type": "text", "text": "Take one."}]}
TOOL_ANSWER = {"role": "assistant", "content": None,
               "tool_calls": [{"id": "call_2", "type": "function",
                               "function": {"name": "get_forecast",
                                            "arguments": '{"city": "Paris", "days": 1}'}}]}


def test_openai_logged_responses_to_one_request_become_one_trace_with_all_choices():
    first = {"request": REQUEST, "app": {"env": "prod"},
             "response": completion("chatcmpl-AAA", 1_746_000_100,
                                    [(ANSWER_A, "stop"), (ANSWER_B, "stop")])}
    other_request = {**REQUEST, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "Hello"},
        {"type": "image_url", "image_url": {"url": "https://x.test/cat.png"}}]}]}
    unrelated = {"request": other_request,
                 "response": completion("chatcmpl-CCC", 1_746_000_000,
                                        [({"role": "assistant", "content": "Hi"}, "stop")])}
    # the same request logged again later, with other params: a third candidate (a tool call)
    again = {"request": {**REQUEST, "temperature": 0.2, "n": 1},
             "response": completion("chatcmpl-BBB", 1_746_000_050,
                                    [(TOOL_ANSWER, "tool_calls")], model="gpt-4o mini/β")}
    out = run([json.dumps(first), json.dumps(unrelated), json.dumps(again)],
              SourceSpec("openai_chat"))
    assert [n for n, _ in out] == [1, 2]  # groups in first-seen order, numbered by first line
    trace, single = traces(out)
    assert re.fullmatch(r"openai:[0-9a-f]{32}", trace["trace_id"])
    assert trace["trace_id"] != single["trace_id"]
    assert trace["created_at"] == "2025-04-30T08:00:50+00:00"  # the earliest response
    assert trace["prompt"] == LAST_USER
    assert_conversation(trace["messages"])
    cands = trace["candidates"]
    assert [c["candidate_id"] for c in cands] == ["chatcmpl-AAA.0", "chatcmpl-AAA.1",
                                                  "chatcmpl-BBB.0"]
    assert [c["text"] for c in cands] == [
        "Yes, rain is likely tomorrow.", "Take one.",
        'call get_forecast({"city": "Paris", "days": 1})']
    assert cands[0]["model_id"] == "gpt-4o-2024-08-06"
    assert re.fullmatch(IDENTIFIER_PATTERN, cands[2]["model_id"])
    assert cands[0]["generation"] == {"finish_reason": "stop", "temperature": 0.7, "n": 2,
                                      "usage": {"prompt_tokens": 81, "completion_tokens": 17,
                                                "total_tokens": 98}}
    assert cands[2]["generation"]["temperature"] == 0.2
    assert cands[2]["generation"]["finish_reason"] == "tool_calls"
    # nothing unmapped is dropped: tools, fingerprints, logprobs, refusal, the caller's fields
    extra = trace["openai"]
    assert extra["request"]["tools"][0]["function"]["name"] == "get_weather"
    assert [r["line"] for r in extra["responses"]] == [1, 3]
    assert extra["responses"][0]["app"] == {"env": "prod"}
    assert extra["responses"][0]["system_fingerprint"] == "fp_44709d6fcb"
    assert extra["responses"][0]["choices"][0] == {"index": 0, "logprobs": None}
    assert extra["responses"][0]["message_fields"] == [
        {"where": "response.choices[0].message", "refusal": None}]
    assert single["prompt"] == "Hello" and len(single["candidates"]) == 1
    assert single["openai"]["message_fields"] == [  # a non-text part is kept, not dropped
        {"where": "request.messages[0]", "content_parts": [
            {"part": 1, "type": "image_url", "image_url": {"url": "https://x.test/cat.png"}}]}]


def test_openai_batch_output_joined_with_its_request_and_metadata_options():
    batch_line = {"id": "batch_req_1", "custom_id": "req-7",
                  "body": {"model": "gpt-4o", "messages": OPENAI_MESSAGES},
                  "metadata": {"trace": {"id": "ticket-42"}, "slice": "weather",
                               "ctx": "user is in France"},
                  "response": {"status_code": 200, "request_id": "abc",
                               "body": completion("chatcmpl-Z", 1_746_000_000,
                                                  [(ANSWER_A, "stop")])},
                  "error": None}
    spec = parse_source_spec({"format": "openai_chat",
                              "metadata": {"trace_id": "trace.id", "slice": "slice",
                                           "context": "ctx"},
                              "defaults": {"slice": "default-slice", "policy_version": "p3"}},
                             "sources.batch")
    [trace] = traces(run([json.dumps(batch_line)], spec))
    assert trace["trace_id"] == "ticket-42"
    assert trace["slice"] == "weather"  # the line's own value wins over the default
    assert trace["policy_version"] == "p3"
    assert trace["context"] == "user is in France"
    assert_conversation(trace["messages"])
    response = trace["openai"]["responses"][0]
    assert response["custom_id"] == "req-7" and response["request_key"] == "body"
    assert response["response"] == {"status_code": 200, "request_id": "abc"}


def openai_line(**change):
    line = {"request": {"model": "gpt-4o",
                        "messages": [{"role": "user", "content": f"my key is {SECRET}"}]},
            "response": completion("chatcmpl-X", 1_746_000_000,
                                   [({"role": "assistant", "content": SECRET}, "stop")])}
    line.update(change)
    return json.dumps(line)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"request": {"messages": [{"content": "' + SECRET + '"}]', "not valid JSON"),
        (json.dumps([SECRET]), "a line must be a JSON object"),
        (openai_line(response={"id": "x", "created": 1, "choices": [{"message": SECRET}]}),
         "response.choices[0].message must be an object"),
        (openai_line(request={"model": "m", "messages": [{"role": SECRET, "content": "x"}]}),
         "request.messages[0].role must be one of"),
        (openai_line(request={"model": "m", "messages": [{"role": "system", "content": SECRET}]}),
         "request.messages has no user message with text"),
        (openai_line(response={"id": "x", "created": SECRET, "choices": []}),
         "response.created must be unix seconds"),
        (json.dumps({"id": "batch_req_2", "custom_id": SECRET,
                     "response": {"status_code": 200, "body": completion("c", 1, [])}}),
         "request.messages (Chat Completions) or request.input (Responses API) is missing"),
        (json.dumps({"id": "batch_req_3", "custom_id": "r", "body": {"model": "m",
                     "messages": []}, "response": {"status_code": 500, "body": {"error": SECRET}}}),
         "response.status_code is not 200"),
    ],
)
def test_openai_bad_lines_are_faults_that_name_the_field_but_not_the_value(line, reason):
    assert_one_fault_after_a_good_line(openai_line(), line, reason, SourceSpec("openai_chat"))


def assert_one_fault_after_a_good_line(good, line, reason, spec):
    """The bad second line is one fault naming `reason` without the planted value; the good
    first line still becomes its trace."""
    out = run([good, line], spec)
    [(number, fault)] = faults(out)
    assert number == 2
    assert reason in fault.reason
    assert SECRET not in fault.reason
    assert fault.raw_line == line
    assert len(traces([item for item in out if not isinstance(item[1], SourceFault)])) == 1


# ---- the Responses API (openai_responses, or openai_chat: each line is read as logged) -----


RESPONSES_REQUEST = {
    "model": "gpt-4.1", "instructions": SYSTEM, "temperature": 0.7, "store": True,
    "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
    "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "What's the weather"},
                                     {"type": "input_text", "text": "in Paris?"}]},
        {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather",
         "arguments": ARGS, "status": "completed"},
        {"type": "function_call_output", "call_id": "call_1", "output": TOOL_RESULT},
        {"type": "message", "role": "user", "content": LAST_USER},
    ]}


def response(response_id, created_at, output, status="completed", incomplete=None):
    return {"id": response_id, "object": "response", "created_at": created_at,
            "status": status, "model": "gpt-4.1-2025-04-14", "output": output,
            "incomplete_details": incomplete, "error": None, "instructions": SYSTEM,
            "parallel_tool_calls": True,
            "usage": {"input_tokens": 81, "output_tokens": 17, "total_tokens": 98}}


def said(text, kind="output_text"):
    field = "refusal" if kind == "refusal" else "text"
    return {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
            "content": [{"type": kind, field: text, **({"annotations": []}
                                                      if kind == "output_text" else {})}]}


REASONING = {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text",
                                                             "text": "Rain is forecast."}]}
FORECAST_CALL = {"type": "function_call", "id": "fc_2", "call_id": "call_2",
                 "name": "get_forecast", "arguments": '{"city": "Paris", "days": 1}',
                 "status": "completed"}


@pytest.mark.parametrize("fmt", ["openai_responses", "openai_chat"])
def test_responses_api_calls_to_one_request_become_one_trace_with_every_answer(fmt):
    first = {"request": RESPONSES_REQUEST, "app": {"env": "prod"},
             "response": response("resp_AAA", 1_746_000_100,
                                  [REASONING, said("Yes, rain is likely tomorrow.")])}
    again = {"request": {**RESPONSES_REQUEST, "temperature": 0.2},  # same conversation
             "response": response("resp_BBB", 1_746_000_050, [FORECAST_CALL])}
    out = run([json.dumps(first), json.dumps(again)], SourceSpec(fmt))
    [trace] = traces(out)
    assert re.fullmatch(r"openai:[0-9a-f]{32}", trace["trace_id"])
    assert trace["created_at"] == "2025-04-30T08:00:50+00:00"  # the earliest response
    assert trace["prompt"] == LAST_USER
    assert_conversation(trace["messages"])  # instructions are the system turn
    cands = trace["candidates"]
    assert [c["candidate_id"] for c in cands] == ["resp_AAA.0", "resp_BBB.0"]
    assert [c["text"] for c in cands] == ["Yes, rain is likely tomorrow.",
                                          'call get_forecast({"city": "Paris", "days": 1})']
    assert cands[0]["model_id"] == "gpt-4.1-2025-04-14"
    assert cands[0]["generation"] == {"status": "completed", "temperature": 0.7,
                                      "usage": {"input_tokens": 81, "output_tokens": 17,
                                                "total_tokens": 98}}
    assert cands[1]["generation"]["temperature"] == 0.2
    # nothing unmapped is dropped: tools, store, reasoning items, item ids, the caller's fields
    extra = trace["openai"]
    assert extra["request"] == {"tools": RESPONSES_REQUEST["tools"], "store": True}
    assert {"where": "request.input[1]", "id": "fc_1", "status": "completed"} in \
        extra["message_fields"]
    first_logged = extra["responses"][0]
    assert first_logged["app"] == {"env": "prod"} and first_logged["parallel_tool_calls"]
    assert {"where": "response.output[0]", **REASONING} in first_logged["output_fields"]
    assert {"where": "response.output[1]", "id": "msg_1", "status": "completed"} in \
        first_logged["output_fields"]


def test_responses_api_string_input_batch_output_refusal_and_a_cut_answer():
    batch_line = {"id": "batch_req_1", "custom_id": "req-7",
                  "body": {"model": "gpt-4.1-mini", "input": "Is it safe to rm -rf /tmp?"},
                  "response": {"status_code": 200, "request_id": "abc",
                               "body": response("resp_Z", 1_746_000_000,
                                                [said("Only as root.", "refusal")])},
                  "error": None}
    cut = {"request": {"model": "gpt-4.1-mini", "input": "Is it safe to rm -rf /tmp?",
                       "max_output_tokens": 16},
           "response": response("resp_Y", 1_746_000_009, [said("Usually, but")],
                                status="incomplete",
                                incomplete={"reason": "max_output_tokens"})}
    chat = {"request": REQUEST, "response": completion("chatcmpl-F", 1_746_000_000,
                                                       [(ANSWER_A, "stop")])}
    out = run([json.dumps(batch_line), json.dumps(cut), json.dumps(chat)],
              SourceSpec("openai_responses"))
    single, chat_trace = traces(out)  # one file may mix both APIs
    assert single["messages"] == [{"role": "user", "content": "Is it safe to rm -rf /tmp?"}]
    assert [c["text"] for c in single["candidates"]] == ["Only as root.", "Usually, but"]
    assert single["candidates"][1]["generation"] == {
        "status": "incomplete", "incomplete_reason": "max_output_tokens",
        "max_output_tokens": 16, "usage": {"input_tokens": 81, "output_tokens": 17,
                                           "total_tokens": 98}}
    batch = single["openai"]["responses"][0]
    assert batch["custom_id"] == "req-7" and batch["request_key"] == "body"
    assert batch["response"] == {"status_code": 200, "request_id": "abc"}
    assert chat_trace["candidates"][0]["candidate_id"] == "chatcmpl-F.0"


def responses_line(request=None, **change):
    line = {"request": request or {"model": "gpt-4.1", "input": f"my key is {SECRET}"},
            "response": response("resp_X", 1_746_000_000, [said(SECRET)])}
    line["response"].update(change)
    return json.dumps(line)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (responses_line(status="failed"), "response.status is failed (no finished answer)"),
        (responses_line(status="in_progress"), "response.status is in_progress"),
        (responses_line(error={"code": "server_error", "message": SECRET}),
         "response.error is set"),
        (responses_line(output=[REASONING]),
         "response.output has no assistant message or function call"),
        (responses_line(output=[{"role": "user", "content": SECRET}]),
         "response.output[0].role must be one of assistant"),
        (responses_line(output={"text": SECRET}), "response.output must be a list"),
        (responses_line(created_at=SECRET), "response.created_at must be unix seconds"),
        (responses_line(id=""), "response.id must be a non-empty string"),
        (responses_line({"model": "gpt-4.1", "input": {"text": SECRET}}),
         "request.input must be a string or a list of items"),
        (responses_line({"model": "gpt-4.1", "input": [{"role": SECRET, "content": "x"}]}),
         "request.input[0].role must be one of"),
        (responses_line({"model": "gpt-4.1", "input": [
            {"type": "function_call_output", "output": SECRET}]}),
         "request.input[0].call_id must be a string"),
        (responses_line({"model": "gpt-4.1", "instructions": SECRET, "input": [
            {"role": "assistant", "content": SECRET}]}),
         "request.input has no user message with text"),
        (responses_line({"model": "gpt-4.1", "instructions": [SECRET], "input": "hi"}),
         "request.instructions must be a string or null"),
    ],
)
def test_responses_api_bad_lines_are_faults_that_name_the_field_but_not_the_value(line, reason):
    assert_one_fault_after_a_good_line(responses_line(), line, reason,
                                       SourceSpec("openai_responses"))


# ---- OTLP / GenAI semantic conventions ------------------------------------------------------


def attr(key, value):
    if isinstance(value, bool):
        wrapped = {"boolValue": value}
    elif isinstance(value, int):
        wrapped = {"intValue": str(value)}
    elif isinstance(value, float):
        wrapped = {"doubleValue": value}
    elif isinstance(value, list):
        wrapped = {"arrayValue": {"values": [attr("", v)["value"] for v in value]}}
    elif isinstance(value, dict):
        wrapped = {"kvlistValue": {"values": [attr(k, v) for k, v in value.items()]}}
    else:
        wrapped = {"stringValue": value}
    return {"key": key, "value": wrapped}


TRACE_HEX = "5b8efff798038103d269b633813fc60c"


def span(span_hex, attributes, events=(), name="chat gpt-4o", start="1746000000123456789"):
    return {"traceId": TRACE_HEX, "spanId": span_hex, "parentSpanId": "eee19b7ec3c1b173",
            "name": name, "kind": 3, "startTimeUnixNano": start,
            "endTimeUnixNano": "1746000001000000000",
            "attributes": [attr(k, v) for k, v in attributes.items()],
            "events": [{"timeUnixNano": "1746000000200000000", "name": n,
                        "attributes": [attr(k, v) for k, v in a.items()]} for n, a in events],
            "status": {"code": 1}}


def export(*spans):
    return json.dumps({"resourceSpans": [{
        "resource": {"attributes": [attr("service.name", "weather-bot")]},
        "scopeSpans": [{"scope": {"name": "opentelemetry.instrumentation.openai_v2",
                                  "version": "2.1b0"},
                        "spans": list(spans)}]}]})


HTTP_SPAN = span("aaaaaaaaaaaaaaaa", {"http.request.method": "POST", "url.full": "https://x/y"},
                 name="POST /v1/chat/completions")

GENAI_INPUT = [
    {"role": "user", "parts": [{"type": "text", "content": FIRST_USER}]},
    {"role": "assistant", "parts": [{"type": "tool_call", "id": "call_1", "name": "get_weather",
                                     "arguments": {"city": "Paris"}}]},
    {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1",
                                "response": {"temp_c": 12, "sky": "rain"}}]},
    {"role": "user", "parts": [{"type": "text", "content": LAST_USER}]},
]
GENAI_OUTPUT = [
    {"role": "assistant", "parts": [{"type": "text", "content": "Yes, take one."}],
     "finish_reason": "stop"},
    {"role": "assistant", "parts": [{"type": "tool_call", "id": "call_2", "name": "get_forecast",
                                     "arguments": {"city": "Paris"}}],
     "finish_reason": "tool_call"},
]


def genai_attributes(**extra):
    return {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.response.id": "chatcmpl-Q1", "gen_ai.request.temperature": 0.5,
            "gen_ai.usage.input_tokens": 81, "gen_ai.usage.output_tokens": 17,
            "gen_ai.system_instructions": json.dumps([{"type": "text", "content": SYSTEM}]),
            "gen_ai.input.messages": json.dumps(GENAI_INPUT),
            "gen_ai.output.messages": json.dumps(GENAI_OUTPUT),
            "server.address": "api.openai.com", **extra}


def test_otlp_genai_chat_span_becomes_a_trace_and_other_spans_are_counted_as_skipped():
    stats = SourceStats()
    out = run([export(HTTP_SPAN, span("bbbbbbbbbbbbbbbb", genai_attributes()))],
              SourceSpec("otlp_genai", defaults={"slice": "weather"}), stats)
    [trace] = traces(out)
    assert stats.spans_seen == 2 and stats.spans_skipped == 1 and stats.traces == 1
    assert stats.summary() == "1 spans without GenAI content skipped"
    assert trace["trace_id"] == f"otel:{TRACE_HEX}:bbbbbbbbbbbbbbbb"
    assert trace["created_at"] == "2025-04-30T08:00:00.123456+00:00"
    assert trace["prompt"] == LAST_USER
    assert trace["slice"] == "weather"
    assert_conversation(trace["messages"], first_user=FIRST_USER)
    cands = trace["candidates"]
    assert [c["candidate_id"] for c in cands] == ["chatcmpl-Q1.0", "chatcmpl-Q1.1"]
    assert [c["text"] for c in cands] == ["Yes, take one.",
                                          'call get_forecast({"city": "Paris"})']
    assert cands[0]["model_id"] == "gpt-4o-2024-08-06"
    assert cands[1]["generation"] == {"finish_reason": "tool_call", "temperature": 0.5,
                                      "usage": {"input_tokens": 81, "output_tokens": 17}}
    otel = trace["otel"]
    assert otel["attributes"] == {"gen_ai.operation.name": "chat",
                                  "gen_ai.provider.name": "openai",
                                  "server.address": "api.openai.com"}
    assert otel["resource"] == {"service.name": "weather-bot"}
    assert otel["parent_span_id"] == "eee19b7ec3c1b173" and otel["kind"] == "SPAN_KIND_CLIENT"
    assert otel["scope"]["name"] == "opentelemetry.instrumentation.openai_v2"


def test_otlp_event_based_convention_keeps_every_turn_and_every_choice():
    events = [
        ("gen_ai.system.message", {"gen_ai.system": "openai", "content": SYSTEM}),
        ("gen_ai.user.message", {"gen_ai.system": "openai", "content": FIRST_USER}),
        ("gen_ai.assistant.message", {"gen_ai.system": "openai", "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": ARGS}}]}),
        ("gen_ai.tool.message", {"gen_ai.system": "openai", "id": "call_1",
                                 "content": TOOL_RESULT}),
        ("gen_ai.user.message", {"body": json.dumps({"content": LAST_USER})}),
        ("gen_ai.choice", {"gen_ai.system": "openai", "index": 0, "finish_reason": "stop",
                           "message": {"role": "assistant", "content": "Rain: yes."}}),
        ("gen_ai.choice", {"index": 1, "finish_reason": "tool_calls",
                           "message": json.dumps({"tool_calls": [{
                               "id": "call_9", "type": "function",
                               "function": {"name": "get_forecast", "arguments": "{}"}}]})}),
        ("exception", {"exception.type": "Timeout"}),
    ]
    attributes = {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o"}
    stats = SourceStats()
    [trace] = traces(run([export(span("cccccccccccccccc", attributes, events), HTTP_SPAN)],
                         SourceSpec("otlp_genai"), stats))
    assert stats.spans_skipped == 1
    assert_conversation(trace["messages"], first_user=FIRST_USER)
    assert trace["prompt"] == LAST_USER
    assert [c["candidate_id"] for c in trace["candidates"]] == ["cccccccccccccccc.0",
                                                                "cccccccccccccccc.1"]
    assert [c["text"] for c in trace["candidates"]] == ["Rain: yes.", "call get_forecast({})"]
    assert trace["candidates"][0]["model_id"] == "gpt-4o"
    assert trace["otel"]["events"][0]["name"] == "exception"
    assert trace["otel"]["attributes"] == {"gen_ai.system": "openai"}


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (span("dddddddddddddddd", genai_attributes(**{
            "gen_ai.input.messages": '[{"role": "user", "parts": [' + SECRET})),
         "span 1: gen_ai.input.messages is not valid JSON"),
        (span("dddddddddddddddd", genai_attributes(**{
            "gen_ai.output.messages": json.dumps([{"role": SECRET, "parts": []}])})),
         "span 1: gen_ai.output.messages[0].role must be one of"),
        (span("dddddddddddddddd", genai_attributes(**{
            "gen_ai.input.messages": json.dumps([{"role": "system", "parts": [
                {"type": "text", "content": SECRET}]}])})),
         "span 1: gen_ai.input.messages has no user message with text"),
        (span("dddddddddddddddd", genai_attributes(), start="0"),
         "span 1: startTimeUnixNano is missing"),
    ],
)
def test_otlp_bad_span_is_one_fault_and_the_other_spans_of_the_line_flow_on(bad, reason):
    good = span("bbbbbbbbbbbbbbbb", genai_attributes())
    line = export(good, bad, HTTP_SPAN)
    out = run([line], SourceSpec("otlp_genai"))
    [(number, fault)] = faults(out)
    assert number == 1 and reason in fault.reason and SECRET not in fault.reason
    assert fault.raw_line == line
    [trace] = traces([item for item in out if not isinstance(item[1], SourceFault)])
    assert trace["trace_id"].endswith(":bbbbbbbbbbbbbbbb")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [
            {**span("bbbbbbbbbbbbbbbb", genai_attributes()), "traceId": SECRET}]}]}]}),
         "resourceSpans[0].scopeSpans[0].spans[0].traceId must be hex digits"),
        (json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [
            {**span("bbbbbbbbbbbbbbbb", genai_attributes()), "startTimeUnixNano": SECRET}]}]}]}),
         "not an OTLP/JSON ExportTraceServiceRequest"),
        (json.dumps({"spans": [SECRET]}), "resourceSpans is missing"),
        ("{" + SECRET, "not valid JSON"),
    ],
)
def test_otlp_lines_that_are_not_export_requests_are_faults(line, reason):
    [(number, fault)] = run([line], SourceSpec("otlp_genai"))
    assert isinstance(fault, SourceFault)
    assert reason in fault.reason and SECRET not in fault.reason and fault.raw_line == line


# ---- OpenInference --------------------------------------------------------------------------


def oi_attributes():
    flat = {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini",
            "llm.invocation_parameters": json.dumps({"temperature": 0.1, "max_tokens": 200}),
            "llm.token_count.prompt": 80, "llm.token_count.completion": 12,
            "input.value": "{...}", "session.id": "sess-1"}
    turns = [
        {"message.role": "system", "message.content": SYSTEM},
        {"message.role": "user", "message.contents.0.message_content.type": "text",
         "message.contents.0.message_content.text": "What's the weather",
         "message.contents.1.message_content.type": "text",
         "message.contents.1.message_content.text": "in Paris?"},
        {"message.role": "assistant",
         "message.tool_calls.0.tool_call.id": "call_1",
         "message.tool_calls.0.tool_call.function.name": "get_weather",
         "message.tool_calls.0.tool_call.function.arguments": ARGS},
        {"message.role": "tool", "message.tool_call_id": "call_1",
         "message.content": TOOL_RESULT},
        {"message.role": "user", "message.content": LAST_USER},
    ]
    for i, turn in enumerate(turns):
        flat.update({f"llm.input_messages.{i}.{k}": v for k, v in turn.items()})
    outputs = [{"message.role": "assistant", "message.content": "Yes: rain."},
               {"message.role": "assistant",
                "message.tool_calls.0.tool_call.id": "call_3",
                "message.tool_calls.0.tool_call.function.name": "get_forecast",
                "message.tool_calls.0.tool_call.function.arguments": "{}"}]
    for i, out in enumerate(outputs):
        flat.update({f"llm.output_messages.{i}.{k}": v for k, v in out.items()})
    return flat


def test_openinference_otlp_llm_span_maps_and_chain_spans_are_skipped():
    chain = span("aaaaaaaaaaaaaaaa", {"openinference.span.kind": "CHAIN",
                                      "input.value": "hello"})
    stats = SourceStats()
    out = run([export(chain, span("bbbbbbbbbbbbbbbb", oi_attributes()), HTTP_SPAN)],
              SourceSpec("openinference"), stats)
    [trace] = traces(out)
    assert (stats.spans_seen, stats.spans_skipped) == (3, 2)
    assert trace["trace_id"] == f"otel:{TRACE_HEX}:bbbbbbbbbbbbbbbb"
    assert_conversation(trace["messages"])
    assert trace["prompt"] == LAST_USER
    cands = trace["candidates"]
    assert [c["text"] for c in cands] == ["Yes: rain.", "call get_forecast({})"]
    assert cands[0]["model_id"] == "gpt-4o-mini"
    assert cands[0]["generation"] == {"temperature": 0.1, "max_tokens": 200, "usage": {
        "prompt_tokens": 80, "completion_tokens": 12}}
    assert trace["openinference"]["attributes"] == {"input.value": "{...}",
                                                    "session.id": "sess-1"}


def test_openinference_flat_span_export_with_nested_attributes():
    nested = {
        "openinference": {"span": {"kind": "LLM"}},
        "llm": {"model_name": "claude-3-5-sonnet",
                "input_messages": [{"message": {"role": m["role"], "content": m["content"]}}
                                   if m["role"] != "assistant" else
                                   {"message": {"role": "assistant", "tool_calls": [
                                       {"tool_call": {"id": "call_1", "function": {
                                           "name": "get_weather", "arguments": ARGS}}}]}}
                                   for m in OPENAI_MESSAGES if m["role"] != "tool"],
                "output_messages": [{"message": {"role": "assistant", "content": "Yes."}}]},
    }
    nested["llm"]["input_messages"][1]["message"]["content"] = FIRST_USER
    nested["llm"]["input_messages"].insert(3, {"message": {
        "role": "tool", "tool_call_id": "call_1", "content": TOOL_RESULT}})
    phoenix = {"name": "ChatAnthropic", "span_kind": "LLM", "parent_id": None,
               "context": {"trace_id": TRACE_HEX.upper(), "span_id": "0123456789abcdef"},
               "start_time": "2025-04-30T08:00:00.5+00:00", "end_time": "2025-04-30T08:00:02Z",
               "status_code": "OK", "attributes": nested, "events": []}
    not_llm = {**phoenix, "attributes": {"openinference": {"span": {"kind": "RETRIEVER"}}}}
    stats = SourceStats()
    [trace] = traces(run([json.dumps(phoenix), json.dumps(not_llm)],
                         SourceSpec("openinference"), stats))
    assert stats.spans_skipped == 1
    assert trace["trace_id"] == f"otel:{TRACE_HEX}:0123456789abcdef"
    assert trace["created_at"] == "2025-04-30T08:00:00.500000+00:00"
    assert_conversation(trace["messages"], first_user=FIRST_USER)
    assert trace["candidates"][0]["text"] == "Yes."
    assert trace["openinference"]["span_kind"] == "LLM"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"llm.invocation_parameters": "{" + SECRET}, "llm.invocation_parameters is not valid"),
        ({"llm.input_messages.1.message.role": SECRET}, "llm.input_messages.1.role must be"),
    ],
)
def test_openinference_bad_spans_are_faults_without_the_value(change, reason):
    line = export(span("bbbbbbbbbbbbbbbb", {**oi_attributes(), **change}))
    [(_, fault)] = run([line], SourceSpec("openinference"))
    assert isinstance(fault, SourceFault)
    assert reason in fault.reason and fault.reason.startswith("span 0: ")
    assert SECRET not in fault.reason


def test_openinference_flat_span_with_bad_context_is_a_fault():
    line = json.dumps({"context": {"trace_id": SECRET, "span_id": "ab"}, "attributes": {},
                       "start_time": "2025-04-30T08:00:00Z"})
    [(_, fault)] = run([line], SourceSpec("openinference"))
    assert fault.reason == "context.trace_id must be a hex string"


# ---- jsonl_mapping --------------------------------------------------------------------------


MAPPING = {"format": "jsonl_mapping",
           "fields": {"trace_id": "meta.id", "created_at": "ts", "prompt": "input.question",
                      "context": "input.docs[0]", "candidates": "outputs",
                      "messages": "conversation"},
           "defaults": {"policy_version": "policy-7", "slice": "support"}}


def test_jsonl_mapping_maps_paths_and_keeps_unmapped_fields_under_source():
    record = {"meta": {"id": "row-1", "team": "search"}, "ts": 1_746_000_000.25,
              "input": {"question": LAST_USER, "docs": ["doc one", "doc two"],
                        "lang": "en"},
              "outputs": ["answer A", "answer B"], "conversation": OPENAI_MESSAGES,
              "score": 0.9}
    [trace] = traces(run([json.dumps(record)], parse_source_spec(MAPPING, "sources.x")))
    assert trace["trace_id"] == "row-1"
    assert trace["created_at"] == "2025-04-30T08:00:00.250000+00:00"
    assert trace["prompt"] == LAST_USER and trace["context"] == "doc one"
    assert [(c["candidate_id"], c["text"]) for c in trace["candidates"]] == [
        ("c0", "answer A"), ("c1", "answer B")]
    assert_conversation(trace["messages"])
    assert trace["policy_version"] == "policy-7" and trace["slice"] == "support"
    assert trace["source"] == {"meta": {"team": "search"}, "score": 0.9,
                               "input": {"docs": ["doc one", "doc two"], "lang": "en"}}


def test_jsonl_mapping_candidate_objects_by_sub_paths_and_prompt_from_the_conversation():
    spec = parse_source_spec({
        "format": "jsonl_mapping",
        "fields": {"created_at": "when", "messages": "chat", "candidates": "gens",
                   "slice": "tags.slice"},
        "candidate_fields": {"candidate_id": "id", "text": "out.text", "model_id": "model"},
        "defaults": {"slice": "fallback"}}, "sources.y")
    record = {"when": "2026-05-01T10:00:00+02:00", "chat": OPENAI_MESSAGES,
              "gens": [{"id": "g1", "out": {"text": "A"}, "model": "m-1"},
                       {"id": "g2", "out": {"text": "B"}, "model": "m-2", "latency_ms": 40}]}
    [trace] = traces(run([json.dumps(record), json.dumps(record)], spec)[:1])
    assert trace["prompt"] == LAST_USER  # the final user turn of the mapped conversation
    assert re.fullmatch(r"jsonl:[0-9a-f]{32}", trace["trace_id"])
    assert [(c["candidate_id"], c["model_id"], c["text"]) for c in trace["candidates"]] == [
        ("g1", "m-1", "A"), ("g2", "m-2", "B")]
    assert trace["slice"] == "fallback"  # tags.slice is absent from the line
    assert trace["source"]["gens"][1]["latency_ms"] == 40  # a partly mapped list is kept


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"ts": 1, "input": {"q": SECRET}, "meta": {"id": "a"}},
         "input.question (mapped to prompt) is missing"),
        ({"ts": [SECRET], "input": {"question": "q"}, "meta": {"id": "a"}},
         "ts must be unix seconds"),
        ({"ts": 1, "input": {"question": "q"}, "meta": {"id": "a"}, "outputs": [{"x": SECRET}]},
         "outputs[0].text (mapped to text) must be a string"),
        ({"ts": 1, "input": {"question": "q"}, "meta": {"id": "a"},
          "conversation": [{"role": SECRET}]}, "conversation[0].role must be one of"),
    ],
)
def test_jsonl_mapping_bad_records_name_the_path(record, reason):
    spec = parse_source_spec(MAPPING, "sources.x")
    line = json.dumps(record)
    [(_, fault)] = run([line], spec)
    assert isinstance(fault, SourceFault)
    assert reason in fault.reason
    assert SECRET not in fault.reason and fault.raw_line == line


# ---- declarations, passthrough, the contract after us --------------------------------------


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"format": "csv"}, r"sources\.a\.format must be one of"),
        ({"format": "jsonl_mapping", "fields": {"prompt": "q", "created_at": "t",
                                                "answer": "a"}},
         r"sources\.a\.fields\.answer: unknown field"),
        ({"format": "jsonl_mapping", "fields": {"prompt": "q..x", "created_at": "t"}},
         r"sources\.a\.fields\.prompt: a path is dotted keys"),
        ({"format": "jsonl_mapping", "fields": {"prompt": "a[x]", "created_at": "t"}},
         r"sources\.a\.fields\.prompt: a path"),
        ({"format": "jsonl_mapping", "fields": {"created_at": "t"}}, r"must map prompt"),
        ({"format": "openai_chat", "fields": {"prompt": "q"}}, r"only for format jsonl_mapping"),
        ({"format": "native", "defaults": {"trace_id": "x"}}, r"sources\.a\.defaults\.trace_id"),
        ({"format": "native", "colour": "red"}, r"sources\.a: unknown key 'colour'"),
        ([1], r"sources\.a: a source must be a mapping"),
    ],
)
def test_bad_declarations_name_where_and_the_key(obj, message):
    with pytest.raises(ValueError, match=message):
        parse_source_spec(obj, "sources.a")


def test_declaration_round_trip_and_formats():
    assert SOURCE_FORMATS == ("native", "openai_chat", "openai_responses", "otlp_genai",
                              "openinference", "jsonl_mapping")
    spec = parse_source_spec("otlp_genai", "sources.o")
    assert spec.format == "otlp_genai" and dict(spec.defaults) == {}


@pytest.mark.parametrize("fmt", ["native", "openai_chat", "otlp_genai", "openinference"])
def test_line_faults_pass_through_unchanged_with_their_number(fmt):
    fault = LineFault("line is longer than max_line_bytes (10 bytes); it was skipped unread")
    out = run([fault], SourceSpec(fmt))
    assert out == [(1, fault)] and out[0][1].__class__ is LineFault
    mapping = parse_source_spec(MAPPING, "s")
    assert list(native_lines([(0, fault)], mapping)) == [(0, fault)]


def test_native_lines_pass_through_unchanged():
    lines = [(3, '{"trace_id": "t", "x": 1}'), (4, "{broken")]
    assert list(native_lines(lines, SourceSpec())) == lines


def test_mapped_file_flows_through_the_contract_reader_and_validation(tmp_path):
    path = tmp_path / "calls.jsonl"
    good = {"request": REQUEST, "response": completion("chatcmpl-F", 1_746_000_000,
                                                       [(ANSWER_A, "stop")])}
    again = {**good, "response": completion("chatcmpl-G", 1_746_000_009, [(ANSWER_B, "stop")])}
    path.write_text(json.dumps(good) + "\n\n{oops " + SECRET + "\n" + json.dumps(again) + "\n")
    out = list(native_lines(read_lines(path), SourceSpec("openai_chat")))
    [(bad_number, fault)] = faults(out)
    assert bad_number == 3 and SECRET not in fault.reason
    passed = [(n, item) for n, item in out if not isinstance(item, SourceFault)]
    parsed = parse_trace_lines(passed, "landing/calls.jsonl", "2025-04-30")
    assert parsed.quarantine == []
    [row] = parsed.rows
    assert row["source_line"] == 1 and len(row["candidates"]) == 2  # one request, two logs
    assert [c["text"] for c in row["candidates"]] == ["Yes, rain is likely tomorrow.",
                                                      "Take one."]
    assert json.loads(row["extra_json"])["messages"][4]["content"] == LAST_USER
