"""What `python -m appliance serve` sets for its process before it serves (appliance.__main__)."""

import subprocess
import sys


def test_arrow_buffers_come_from_the_system_allocator() -> None:
    # In a process of its own: the setting is process-wide.
    script = ("import pyarrow as pa\n"
              "from appliance.__main__ import use_system_allocator_for_arrow\n"
              "use_system_allocator_for_arrow()\n"
              "table = pa.table({'n': list(range(1000))})\n"
              "print(pa.default_memory_pool().backend_name, pa.system_memory_pool().bytes_allocated() > 0)\n")
    answer = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert answer.stdout.split() == ["system", "True"]


def test_the_collector_runs_rarely_and_skips_what_the_imports_made() -> None:
    script = ("import gc\n"
              "from appliance.__main__ import GC_THRESHOLDS, tune_garbage_collection\n"
              "tune_garbage_collection()\n"
              "print(gc.get_threshold() == GC_THRESHOLDS, gc.get_freeze_count() > 10_000)\n")
    answer = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert answer.stdout.split() == ["True", "True"]
