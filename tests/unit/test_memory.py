"""release_freed_memory gives freed heap pages back to the system (on glibc), measured in
a fresh interpreter, whose heap no earlier test has shaped."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

MB = 1_000_000
PROBE = """
import json, os
from bragi.memory import release_freed_memory

def resident():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

blocks = [bytearray(100_000) for _ in range(1_500)]  # heap, under the mmap threshold
pins = [bytearray(1_000) for _ in range(200)]  # among them: free() cannot shrink the heap
held = resident()
del blocks
freed = resident()
release_freed_memory()
print(json.dumps({"held": held, "freed": freed, "released": resident()}))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_memory_freed_under_a_live_block_goes_back_to_the_system() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    rss = json.loads(done.stdout)  # 150 MB held; free() alone gives back only what is on top
    assert rss["released"] < rss["freed"] - 50 * MB, rss
