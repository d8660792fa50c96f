"""section 6 of docs/contract.md: many threads at once, and children forked after the parent used the library.

Each scenario runs in a fresh interpreter (so the parent really starts Numba's threading layer
first) under a time limit: an abort or a hang fails the test instead of killing the run.
"""

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import os, sys, threading, multiprocessing
    import numpy as np
    import numba
    import sparsemax_nb as sm

    rng = np.random.default_rng(0)
    z = rng.standard_normal((4000, 300))
    y = rng.integers(0, 300, 4000)
    ref = sm.sparsemax(z)                       # large: the parallel build
    ref_loss = sm.sparsemax_loss(z, y)
    assert numba.threading_layer() == sys.argv[1], numba.threading_layer()

    # 8 threads at once, all with large inputs.
    errors = []
    def work(i):
        try:
            for _ in range(4):
                out = np.empty_like(z)
                sm.sparsemax(z + i, out=out, method=("sort", "select")[i % 2])
                assert np.allclose(out, ref, atol=1e-12)
                assert np.allclose(sm.sparsemax_loss(z, y), ref_loss, atol=1e-12)
        except BaseException as e:
            errors.append(repr(e))
    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads: t.start()
    for t in threads: t.join()
    assert not errors, errors

    # A child forked after the parent ran parallel kernels.
    pid = os.fork()
    if pid == 0:
        ok = np.allclose(sm.sparsemax(z), ref, atol=1e-12)
        ok &= np.allclose(sm.sparsemax_loss(z, y), ref_loss, atol=1e-12)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status

    # A fork-based multiprocessing pool.
    def job(i):
        return float(sm.sparsemax(z[i * 500:(i + 1) * 500] * 2).sum())
    with multiprocessing.get_context("fork").Pool(2) as pool:
        sums = pool.map(job, range(8))
    assert np.allclose(sums, 500.0), sums

    # The parent still runs in parallel afterwards.
    assert np.allclose(sm.sparsemax(z), ref, atol=1e-12)
    print("OK")
    """
)


@pytest.mark.parametrize("layer", ["omp", "workqueue"])
def test_threads_and_fork(layer, tmp_path):
    env = dict(os.environ, NUMBA_THREADING_LAYER=layer, NUMBA_NUM_THREADS="2")
    try:
        r = subprocess.run(
            [sys.executable, "-c", SCRIPT, layer],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"hung with threading layer {layer}")
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout + r.stderr


def test_numba_configuration_untouched():
    import numba

    import sparsemax_nb as sm

    before = (numba.config.THREADING_LAYER, numba.get_num_threads(), numba.config.NUMBA_NUM_THREADS)
    sm.sparsemax(__import__("numpy").random.default_rng(0).standard_normal((3000, 100)))
    assert (numba.config.THREADING_LAYER, numba.get_num_threads(), numba.config.NUMBA_NUM_THREADS) == before
