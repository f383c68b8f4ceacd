"""feedback-pipeline: LLM-assistant traces to versioned human-feedback datasets."""

import os
import sys

ARROW_POOL_ENV = "ARROW_DEFAULT_MEMORY_POOL"
ARROW_POOL = "jemalloc"
"""The Arrow memory pool the stages allocate from unless ARROW_POOL_ENV names another (why:
core.runtime._arrow_pool)."""

if sys.platform.startswith("linux"):
    # Before pyarrow is first imported: it fixes its C++ default pool then, and the Parquet
    # and IPC readers allocate from that one. Worker processes started from here inherit it.
    # Linux only: elsewhere a wheel may lack jemalloc, and Arrow would warn on every start.
    os.environ.setdefault(ARROW_POOL_ENV, ARROW_POOL)
