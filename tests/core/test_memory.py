"""core.memory: glibc keeps freed large blocks in the process (so the next array reuses mapped pages)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from napari_brats_seg.core import memory

GLIBC = sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION") is not None

# Allocates, touches and frees a 400 MB array in a fresh process; prints whether the settings applied and
# the resident memory (MB) before the allocation and after the free.
PROBE = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    from napari_brats_seg.core.memory import keep_freed_memory
    applied = keep_freed_memory() if sys.argv[1] == "tune" else None
    def rss_mb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    before = rss_mb()
    a = np.ones(100 * 2**20, dtype=np.float32)  # 400 MB, every page touched
    del a
    print(json.dumps({"applied": applied, "before": before, "after": rss_mb(),
                      "again": keep_freed_memory() if applied else None}))
""")


def _probe(mode: str, env: dict[str, str] | None = None) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                         env={**os.environ, **(env or {})})
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's; elsewhere keep_freed_memory() does nothing")
def test_freed_memory_stays_in_the_process_only_when_tuned() -> None:
    tuned = _probe("tune")
    assert tuned["applied"] is True and tuned["again"] is True  # applied once, then reported as in effect
    assert tuned["after"] - tuned["before"] > 300  # the freed 400 MB stay mapped for the next array
    default = _probe("default")
    assert default["after"] - default["before"] < 100  # glibc's default: a large block goes back at once


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's; elsewhere keep_freed_memory() does nothing")
def test_environment_variable_turns_it_off() -> None:
    off = _probe("tune", {memory.ENV_VAR: "0"})
    assert off["applied"] is False
    assert off["after"] - off["before"] < 100


def test_settings_are_valid_mallopt_values() -> None:
    for param, value in memory.SETTINGS:
        assert param in (memory.M_MMAP_THRESHOLD, memory.M_TRIM_THRESHOLD, memory.M_ARENA_MAX)
        assert 0 < value <= 2**31 - 1  # mallopt takes a C int
