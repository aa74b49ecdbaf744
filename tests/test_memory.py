"""Training processes keep freed memory for reuse (``core.common.backend.keep_freed_memory``).

These tests count the page faults of child processes: they test the machine's kernel and C
library as much as the project, so they are marked ``machine`` and skipped where they cannot apply.
"""

import mmap
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest


def _kernel_counts_page_faults() -> bool:
    """Whether touching fresh pages shows in ``ru_minflt`` (some sandboxes, e.g. gVisor, report 0)."""
    import resource  # Unix only: imported once the platform is known to be Linux

    pages = 256
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    with mmap.mmap(-1, pages * mmap.PAGESIZE) as memory:
        for page in range(pages):
            memory[page * mmap.PAGESIZE] = 1
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before >= pages // 2


def _why_not_here() -> str | None:
    """Why page-fault counts cannot test malloc on this machine, or None where they can."""
    if sys.platform != "linux":
        return f"counts Linux page faults; this is {sys.platform}"
    if platform.libc_ver()[0] != "glibc":
        return "tunes glibc's malloc (mallopt); this C library is not glibc"
    huge_pages = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if huge_pages.is_file() and "[always]" in huge_pages.read_text():
        return "transparent huge pages are always on: a fresh buffer faults once per 2 MiB, not per page"
    if not _kernel_counts_page_faults():
        return "this kernel does not count a minor page fault per fresh page (ru_minflt)"
    return None


_REASON = _why_not_here()
pytestmark = [pytest.mark.machine, pytest.mark.skipif(_REASON is not None, reason=_REASON or "")]

# Allocates, fills and frees an 80 MB buffer (the size of the DCGAN step's XLA temporaries)
# through the C library five times, then counts the page faults five more rounds take.
_FAULTS = """
import ctypes, resource, sys
from core.common import backend
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


# A 28x28 DCGAN step (batch 64, the Fashion-MNIST preset's network): its XLA temporaries are
# 80 MB, too large for the side arenas glibc gives worker threads.
_GAN_STEP_FAULTS = """
import sys, resource, numpy as np
import core, jax
from core.common import backend
from core.models.dcgan import DCGAN
if sys.argv[1] == "async":
    jax.config.update("jax_cpu_enable_async_dispatch", True)
assert backend.keep_freed_memory()
model = DCGAN((28, 28, 1), latent_dim=64, width=32)
model.compile("adam", "adam")
images = np.random.default_rng(0).integers(0, 256, (64 * 6, 28, 28, 1), dtype=np.uint8)
model.fit(images, batch_size=64, epochs=1, verbose=0)
per_step = []
for _ in range(3):  # the quietest of 3 epochs: another process's load can cost one epoch some pages
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    model.fit(images, batch_size=64, epochs=1, verbose=0)
    per_step.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 6)
print(min(per_step))
"""


def _gan_step_faults(mode: str) -> int:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("CONVGAN_CPU_DEVICES", None)
    result = subprocess.run([sys.executable, "-c", _GAN_STEP_FAULTS, mode], capture_output=True, text=True,
                            timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    return int(result.stdout.strip().splitlines()[-1])


def test_a_gan_training_step_runs_on_the_main_thread_without_page_faults():
    """``core`` runs CPU programs inline, so the DCGAN step's buffers come from the main heap."""
    assert _gan_step_faults("inline") < 1_000
    # Dispatched to JAX's worker thread, the same step maps its 80 MB afresh (~20,000 pages).
    assert _gan_step_faults("async") > 5_000
