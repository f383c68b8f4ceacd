"""feedback-pipeline: LLM-assistant traces to versioned human-feedback datasets."""

import os
import sys

if sys.platform.startswith("linux"):
    # Before pyarrow is first imported (it fixes its C++ default pool then, and the Parquet
    # and IPC readers allocate from that one): jemalloc, not mimalloc, which keeps freed
    # batches resident (core.runtime). Worker processes started from here inherit it; a pool
    # the environment already names is kept.
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
