"""Backend set-up shared by every entry point (CLI, app, notebooks, tests).

Keras reads ``KERAS_BACKEND`` once, at import time, so this module must run before the first
``import keras``. ``core/__init__.py`` imports it, which makes ``import core`` enough.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys

from core.common.errors import BackendError


def configure() -> None:
    """Select the JAX backend and JAX settings before Keras is imported.

    Sets ``KERAS_BACKEND=jax`` whatever the environment or ``~/.keras/keras.json`` name.

    Raises:
        BackendError: if Keras was already imported with a backend other than JAX.
    """
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "backend") and keras.backend.backend() != "jax":
        raise BackendError(
            f"Keras was already imported with the {keras.backend.backend()!r} backend: "
            "import core before keras (restart the kernel or interpreter first)"
        )
    # JAX whatever KERAS_BACKEND or ~/.keras/keras.json say: the environment variable wins over
    # keras.json, and this process (and every process it starts) runs on JAX only.
    os.environ["KERAS_BACKEND"] = "jax"
    # Trainers and the dashboard may share one GPU: allocate on demand, not 75% up front.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    use_eigen_convolutions()
    split_cpu_into_devices()
    run_cpu_programs_inline()


# XLA:CPU runs convolutions through YNNPACK by default; this flag sends them to Eigen instead.
EIGEN_CONVOLUTIONS_FLAG = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"


def use_eigen_convolutions() -> None:
    """Run XLA:CPU's convolutions on Eigen rather than YNNPACK (JAX 0.10's default).

    YNNPACK runs each convolution on one thread and its weight gradients are slow at this
    project's shapes; Eigen splits each convolution over every core (``docs/performance.md``).
    Applies to the CPU only, and must run before JAX starts its backend; an ``XLA_FLAGS`` that
    already chooses YNNPACK fusion types is left alone.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_experimental_ynn_fusion_type" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {EIGEN_CONVOLUTIONS_FLAG}".strip()


CPU_DEVICES_ENV = "CONVGAN_CPU_DEVICES"


def cpu_device_count() -> int:
    """How many XLA devices the CPU is split into: ``$CONVGAN_CPU_DEVICES``, else one.

    One device by default: Eigen's convolutions already use every core, and nothing waits at
    all-reduces (``docs/performance.md``). ``N`` > 1 makes every training run data-parallel
    over ``N`` CPU devices.

    Raises:
        BackendError: ``CONVGAN_CPU_DEVICES`` is not a whole number of at least 1.
    """
    value = os.environ.get(CPU_DEVICES_ENV)
    if value:
        if not value.isdigit() or int(value) < 1:
            raise BackendError(f"{CPU_DEVICES_ENV} must be a whole number of at least 1, got {value!r}")
        return int(value)
    return 1


def _xla_flags_set_cpu_devices() -> bool:
    return "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")


def cpu_cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def split_cpu_into_devices() -> None:
    """Expose the CPU as ``cpu_device_count()`` XLA devices, so training runs data-parallel.

    With ``CONVGAN_CPU_DEVICES=N`` every training run splits its batches over N devices
    (``keras.distribution.DataParallel``, see ``core.runs.training``). GPUs are unaffected (the
    setting only concerns the host platform). Must run before JAX starts its backend; an
    ``XLA_FLAGS`` that already sets the count, and multi-host jobs, are left alone.
    """
    if _xla_flags_set_cpu_devices():
        return
    if os.environ.get("CONVGAN_COORDINATOR"):
        return
    count = cpu_device_count()
    if count > 1:
        import jax  # here, not at the top: core imports this module before it sets JAX's flags

        # A JAX setting, not XLA_FLAGS: processes this one starts decide for themselves. If JAX
        # has already started (a notebook used it before `import core`), it keeps one device.
        with contextlib.suppress(RuntimeError):
            jax.config.update("jax_num_cpu_devices", count)


def run_cpu_programs_inline() -> None:
    """Run each single-device CPU program on the thread that calls it (no async dispatch).

    JAX's CPU client otherwise hands every program to a worker thread, and glibc serves a
    worker thread from a side arena of 64 MB heaps: a program whose temporary buffers do not
    fit gets fresh pages from the kernel at every step, whatever ``keep_freed_memory`` says.
    Called from the main thread (a training run, the CLI, a notebook), the buffers come from
    the main heap and the step faults no pages. Nothing waits longer: a training step's results
    are read at every step (``core.training.callbacks.WaitForEachStep``). Must run before JAX
    starts its CPU backend.
    """
    import jax  # here, not at the top: core imports this module before it sets JAX's flags

    jax.config.update("jax_cpu_enable_async_dispatch", False)


# glibc's mallopt parameters (<malloc.h>), and how much freed memory malloc may keep.
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
KEPT_FREE_BYTES = 1 << 30


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed memory for reuse instead of returning it to the kernel.

    XLA:CPU allocates a program's temporary buffers afresh at every execution; buffers above
    glibc's largest threshold for serving an allocation from its heap (32 MB) are mapped anew
    at each step, and the kernel zeroes the pages on first touch. Served from the heap (no
    ``mmap`` allocations, heap trimmed only above ``KEPT_FREE_BYTES`` free), a step faults no
    pages (``docs/performance.md``). The price: the process keeps up to that much freed
    memory mapped, so only training processes and the benchmark call this, not the dashboard.

    Returns:
        True when malloc took the settings (glibc); False where it has no ``mallopt``.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):  # not glibc: macOS, Windows
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, KEPT_FREE_BYTES))


def enable_compilation_cache(cache_dir: str) -> None:
    """Turn on JAX's persistent compilation cache in ``cache_dir``.

    The second run of the same model then skips most XLA compilation.
    """
    import jax  # here, not at the top: core imports this module before it sets JAX's flags

    os.makedirs(cache_dir, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", cache_dir)
    # Cache every compiled program, not only the slow ones: small models compile in < 1 s.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


def initialize_multihost() -> bool:
    """Join a multi-host JAX job when the environment describes one.

    Reads ``CONVGAN_COORDINATOR`` (``host:port`` of process 0), ``CONVGAN_NUM_PROCESSES`` and
    ``CONVGAN_PROCESS_ID`` (the CLI's ``--coordinator/--num-processes/--process-id`` set them;
    a cluster script can too). With none set nothing happens.

    Returns:
        True when this process joined a multi-process job.

    Raises:
        BackendError: incomplete or invalid settings.
    """
    coordinator = os.environ.get("CONVGAN_COORDINATOR")
    if not coordinator:
        return False
    try:
        num_processes = int(os.environ["CONVGAN_NUM_PROCESSES"])
        process_id = int(os.environ["CONVGAN_PROCESS_ID"])
    except (KeyError, ValueError) as err:
        raise BackendError(
            "CONVGAN_COORDINATOR is set, so CONVGAN_NUM_PROCESSES and CONVGAN_PROCESS_ID must be whole numbers too"
        ) from err
    if not 0 <= process_id < num_processes:
        raise BackendError(f"process id {process_id} is not in 0..{num_processes - 1}")
    import jax  # here, not at the top: core imports this module before it sets JAX's flags

    # CPU devices of several processes talk through gloo (collectives over TCP); GPUs use NCCL.
    # This must precede any call that starts the XLA backend, jax.devices() included.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)
    return True
