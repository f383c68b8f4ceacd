"""Small helpers shared by the stage modules: metadata that is safe to show in the UI."""


from collections.abc import Mapping

import dagster as dg
import pandas as pd

RESTRICTED_IO = "restricted_io_manager"
WAREHOUSE_IO = "io_manager"


def counts_table(counts: Mapping[str, int], key: str = "value") -> dg.MetadataValue:
    """A markdown table of counts (labels and numbers only, never record text)."""
    rows = "\n".join(f"| {k} | {v} |" for k, v in counts.items())
    return dg.MetadataValue.md(f"| {key} | rows |\n|---|---|\n{rows}")


def value_counts(series: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in series.value_counts(dropna=False).sort_index().items()}


def id_list(ids: list[str], limit: int = 50) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" (+{len(ids) - limit} more)" if len(ids) > limit else "")


QUEUE_IDS = {"routed_queues": dg.AssetIn(metadata={"columns": ["trace_id", "destination"]})}
"""The routed_queues columns a consumer needs: the rules' reason texts stay on disk."""
