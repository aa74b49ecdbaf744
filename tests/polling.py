"""Waiting in tests for what another process does (a job's status, a file appearing)."""

import time


def wait_for(predicate, timeout: float, what: str):
    """``predicate()``'s first truthy value within ``timeout`` seconds, polled every 0.1 s.

    Raises:
        AssertionError: naming ``what``, when the time runs out.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
