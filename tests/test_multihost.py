"""Two processes join one jax.distributed job on loopback and see each other's devices."""

import os
import socket
import subprocess
import sys
import textwrap

import pytest

from core.common import backend
from core.common.errors import BackendError

pytestmark = pytest.mark.xdist_group("multihost")

PROGRAM = textwrap.dedent("""
    import core
    from core.common import backend
    assert backend.initialize_multihost()
    import jax, jax.numpy as jnp
    from jax.experimental import multihost_utils
    gathered = multihost_utils.process_allgather(jnp.array([jax.process_index() + 1.0]))
    print("RESULT", jax.process_count(), jax.device_count(), sorted(float(v) for v in gathered.ravel()))
""")


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_processes_on_loopback_form_one_job():
    port = _free_port()
    processes = []
    for process_id in range(2):
        env = {**os.environ, "CONVGAN_COORDINATOR": f"127.0.0.1:{port}", "CONVGAN_NUM_PROCESSES": "2",
               "CONVGAN_PROCESS_ID": str(process_id)}
        processes.append(subprocess.Popen([sys.executable, "-c", PROGRAM], env=env, text=True,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    for process in processes:
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, err[-2000:]
        result = [line for line in out.splitlines() if line.startswith("RESULT")]
        assert result == ["RESULT 2 2 [1.0, 2.0]"], out


def test_incomplete_settings_are_a_clear_error(monkeypatch):
    monkeypatch.setenv("CONVGAN_COORDINATOR", "127.0.0.1:1234")
    monkeypatch.delenv("CONVGAN_NUM_PROCESSES", raising=False)
    with pytest.raises(BackendError, match="CONVGAN_NUM_PROCESSES"):
        backend.initialize_multihost()
    monkeypatch.setenv("CONVGAN_NUM_PROCESSES", "2")
    monkeypatch.setenv("CONVGAN_PROCESS_ID", "5")
    with pytest.raises(BackendError, match="not in 0..1"):
        backend.initialize_multihost()


def test_no_settings_is_single_process(monkeypatch):
    monkeypatch.delenv("CONVGAN_COORDINATOR", raising=False)
    assert backend.initialize_multihost() is False
