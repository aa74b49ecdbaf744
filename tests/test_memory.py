"""Training processes keep freed memory for reuse (``core.backend.keep_freed_memory``)."""

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc settings")

# Allocates, fills and frees an 80 MB buffer (the size of the DCGAN step's XLA temporaries)
# through the C library five times, then counts the page faults five more rounds take.
_FAULTS = """
import ctypes, resource, sys
from core import backend
if sys.argv[1] == "keep":
    assert backend.keep_freed_memory()
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
def rounds():
    for _ in range(5):
        buffer = libc.malloc(80 << 20)
        ctypes.memset(buffer, 1, 80 << 20)
        libc.free(buffer)
rounds()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
rounds()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _page_faults(mode: str) -> int:
    result = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip().splitlines()[-1])


def test_freed_buffers_are_reused_without_page_faults():
    pages = 5 * (80 << 20) // 4096
    assert _page_faults("default") > pages // 2  # glibc maps and unmaps each buffer: every page faults
    assert _page_faults("keep") < pages // 100
