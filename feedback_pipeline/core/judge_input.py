"""Validation of landed LLM-judge labels (contract section 4)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from feedback_pipeline.core.contract import ContractError, ParsedLines, parse_lines
from feedback_pipeline.core.judge import JUDGE_CHOICES, ORDERS


def validate_judge_label(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ContractError("a judge label must be a JSON object")
    for name in ("trace_id", "judge_id"):
        if not isinstance(obj.get(name), str) or not obj[name]:
            raise ContractError(f"{name} is required and must be a non-empty string")
    if obj.get("order") not in ORDERS:
        raise ContractError(f"order must be one of {', '.join(ORDERS)}")
    if obj.get("choice") not in JUDGE_CHOICES:
        raise ContractError(f"choice must be one of {', '.join(JUDGE_CHOICES)}")
    return {k: obj[k] for k in ("trace_id", "judge_id", "order", "choice")}


def parse_judge_lines(lines: Iterable[tuple[int, str]], source_file: str) -> ParsedLines:
    return parse_lines(lines, source_file, validate_judge_label, "trace_id")
