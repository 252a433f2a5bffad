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


_MAPPED_AFTER_A_LARGE_FREE = """
import ctypes, sys
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "tuned":
    from appliance.__main__ import fix_malloc_mmap_threshold
    fix_malloc_mmap_threshold()
large = bytearray(8 << 20)  # mapped, then freed: glibc's dynamic threshold rises to its size
del large
before = libc.mallinfo2().hblkhd
buffer = bytearray(1 << 20)
print(libc.mallinfo2().hblkhd - before >= 1 << 20)
"""


def test_large_buffers_keep_their_own_mappings_after_a_larger_one_was_freed() -> None:
    answers = [subprocess.run([sys.executable, "-c", _MAPPED_AFTER_A_LARGE_FREE, mode], capture_output=True,
                              text=True, check=True).stdout.strip() for mode in ("tuned", "default")]
    # glibc's default (the control): after an 8 MiB block was freed, 1 MiB comes from the heap.
    assert answers == ["True", "False"]
