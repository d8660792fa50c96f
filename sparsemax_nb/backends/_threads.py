"""The thread policy of the host backends: which build of a driver runs, and when.

Numba's parallel builds run on a process-wide threading layer. Two of its layers cannot be
shared freely: ``workqueue`` aborts when two threads enter parallel code at once, and GNU
OpenMP aborts in a child forked after the parent ran a parallel region. So:

* one process-wide lock guards the parallel builds; a call that finds it taken runs the
  serial build in its own thread (all builds release the GIL), so threads never wait on
  each other and never enter the threading layer together;
* in a child forked after the threading layer started, every call runs serially;
* small calls run serially: on a busy machine a parallel region waits for every worker;
* ``fork()`` waits for a compilation under way in another thread: Numba compiles under one
  process-wide lock, and a child forked while another thread held it would inherit it held
  by a thread the child does not have, and hang at its first compilation. The lock is taken
  around ``fork`` (``os.register_at_fork``) and released on both sides.

Nothing here changes Numba's configuration; the thread count is ``numba.get_num_threads()``.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable

import numba
import numpy as np

# Below this many elements a call runs serially (README, "Threads, processes and compile
# time"; asv_bench/NOTES.md): on a busy machine a parallel region waited ~8 ms.
SERIAL_BELOW = 1 << 18
# Rows at least this long, fewer than the threads, are split between threads themselves
# (forward and threshold, for mappings with BIG_ROWS): one row of 10^7 then uses every core.
BIG_ROW = 1 << 16

_lock = threading.Lock()
_parallel_used = False
_serial_only = False


def _after_fork_in_child() -> None:
    global _lock, _serial_only
    _lock = threading.Lock()  # the parent's may have been held by another thread
    try:
        started = numba.np.ufunc.parallel._is_initialized
    except AttributeError:  # pragma: no cover - layout of a future Numba
        started = True
    if _parallel_used or started:
        _serial_only = True


def _compiler_lock() -> Any:
    from numba.core.compiler_lock import global_compiler_lock

    # The RLock itself: its acquire/release carry no event hooks, which must not run
    # half-way through a fork.
    return getattr(global_compiler_lock, "_lock", global_compiler_lock)


def _before_fork() -> None:
    _compiler_lock().acquire()


def _after_fork_in_parent() -> None:
    _compiler_lock().release()


def _after_fork_in_child_all() -> None:
    # The forking thread took the lock in _before_fork and is this child's only thread,
    # so it still owns it and may release it.
    _compiler_lock().release()
    _after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child_all,
    )


def _big_forward_args(z: Any, p: Any, method: int, theta: Any) -> tuple[Any, ...]:
    n = z.shape[0]
    return z, p, np.empty(n, np.float64), np.empty(n, np.int64), method, True


def _big_threshold_args(z: Any, tau: Any, k: Any, method: int, theta: Any) -> tuple[Any, ...]:
    return z, np.empty((0, 0), z.dtype), tau, k, method, False


_BIG_ARGS: dict[str, Callable[..., tuple[Any, ...]]] = {"forward": _big_forward_args, "threshold": _big_threshold_args}

Getter = Callable[[str, bool], Callable[..., Any]]


def run(get: Getter, name: str, rows: int, size: int, *args: Any,
        big_rows: bool = False) -> Any:
    """Run driver ``name`` on ``rows`` rows of ``size`` elements in all.

    ``get(name, parallel)`` returns a compiled driver taking ``*args`` and a chunk count.
    With ``big_rows``, a few long rows go to the ``"big"`` driver, split between threads.
    """
    if big_rows and name in _BIG_ARGS and size >= SERIAL_BELOW and size // max(rows, 1) >= BIG_ROW:
        threads = numba.get_num_threads()
        if rows < threads:
            done, _ = _parallel_call(lambda: get("big", True)(*_BIG_ARGS[name](*args), 4 * threads))
            if done:
                return None
    return run_builds(get, name, rows, size, *args)


def run_builds(get: Getter, name: str, rows: int, size: int, *args: Any) -> Any:
    """The policy above for any pair of builds, without the long-row split."""
    if rows > 1 and size >= SERIAL_BELOW:
        threads = numba.get_num_threads()
        done, result = _parallel_call(lambda: get(name, True)(*args, min(rows, 4 * threads)))
        if done:
            return result
    return get(name, False)(*args, 1)


def _parallel_call(fn: Callable[[], Any]) -> tuple[bool, Any]:
    """``(True, fn())`` when this thread may run a parallel build now, else ``(False, None)``."""
    global _parallel_used
    if _serial_only or numba.get_num_threads() < 2 or not _lock.acquire(blocking=False):
        return False, None
    try:
        _parallel_used = True
        return True, fn()
    finally:
        _lock.release()
