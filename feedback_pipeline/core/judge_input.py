"""Validation of landed LLM-judge labels (contract section 4)."""

from __future__ import annotations

import json
from collections.abc import Iterable

from feedback_pipeline.core.contract import ContractError, ParsedLines, quarantine_row
from feedback_pipeline.core.judge import JUDGE_CHOICES, ORDERS


def parse_judge_lines(lines: Iterable[tuple[int, str]], source_file: str) -> ParsedLines:
    parsed = ParsedLines()
    for number, line in lines:
        record_id = None
        try:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise ContractError(f"not valid JSON ({err.msg} at column {err.colno})") from err
            if not isinstance(obj, dict):
                raise ContractError("a judge label must be a JSON object")
            record_id = obj.get("trace_id") if isinstance(obj.get("trace_id"), str) else None
            for name in ("trace_id", "judge_id"):
                if not isinstance(obj.get(name), str) or not obj[name]:
                    raise ContractError(f"{name} is required and must be a non-empty string")
            if obj.get("order") not in ORDERS:
                raise ContractError(f"order must be one of {', '.join(ORDERS)}")
            if obj.get("choice") not in JUDGE_CHOICES:
                raise ContractError(f"choice must be one of {', '.join(JUDGE_CHOICES)}")
        except ContractError as err:
            parsed.quarantine.append(quarantine_row(source_file, number, str(err), line, record_id))
            continue
        parsed.rows.append({"trace_id": obj["trace_id"], "judge_id": obj["judge_id"],
                            "order": obj["order"], "choice": obj["choice"],
                            "source_file": source_file, "source_line": number})
    return parsed
