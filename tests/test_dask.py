"""Dask arrays: lazy results equal to the NumPy API, row by row; a 2-process cluster."""

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

import sparsemax_nb as sm  # noqa: E402


def _z(shape=(30, 11), dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(shape).astype(dtype)
    z[1, 3] = np.nan
    z[2] = -np.inf
    z[4, ::2] = -np.inf
    return z


def _dist(shape, seed=1):
    q = np.random.default_rng(seed).random(shape)
    return q / q.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("chunks", [(7, 11), (7, 4), (30, 3)])
def test_forward_threshold_rowwise(dtype, chunks):
    z = _z(dtype=dtype)
    dz = da.from_array(z, chunks=chunks)
    p = sm.sparsemax(dz)
    assert isinstance(p, da.Array) and p.dtype == dtype
    np.testing.assert_array_equal(p.compute(), sm.sparsemax(z))
    tau, k = sm.sparsemax_threshold(dz, method="sort")
    t2, k2 = sm.sparsemax_threshold(z, method="sort")
    assert isinstance(tau, da.Array) and k.dtype == np.int64
    np.testing.assert_array_equal(tau.compute(), t2)
    np.testing.assert_array_equal(k.compute(), k2)


def test_other_axis_and_3d():
    z = _z((6, 11, 5))
    dz = da.from_array(z, chunks=(2, 3, 5))
    np.testing.assert_array_equal(sm.sparsemax(dz, axis=1).compute(), sm.sparsemax(z, axis=1))
    tau, k = sm.sparsemax_threshold(dz, axis=1)
    assert tau.shape == (6, 5)
    np.testing.assert_array_equal(tau.compute(), sm.sparsemax_threshold(z, axis=1)[0])
    v = np.random.default_rng(5).standard_normal(z.shape)
    p = sm.sparsemax(z, axis=1)
    got = sm.sparsemax_jvp(da.from_array(p, chunks=(3, 4, 2)), v, axis=1).compute()
    np.testing.assert_array_equal(got, sm.sparsemax_jvp(p, v, axis=1))


def test_eager_argument_errors():
    dz = da.zeros((4, 5), chunks=2)
    with pytest.raises(ValueError, match="method"):
        sm.sparsemax(dz, method="nope")
    with pytest.raises(np.exceptions.AxisError):
        sm.sparsemax(dz, axis=2)
    with pytest.raises(TypeError, match="complex"):
        sm.sparsemax(da.zeros(3, dtype=complex))
    with pytest.raises(TypeError, match="stream="):
        sm.sparsemax(dz, stream=object())
    with pytest.raises(TypeError, match="out="):
        sm.sparsemax(dz, out=np.empty((4, 5)))
    with pytest.raises(ValueError, match="reduction"):
        sm.sparsemax_loss(dz, np.zeros(4, int), reduction="avg")
    with pytest.raises(ValueError, match="batch shape"):
        sm.sparsemax_loss(dz, np.zeros(5, int))
    with pytest.raises(ValueError, match="same shape"):
        sm.sparsemax_jvp(dz, np.zeros((4, 4)))


def test_row_too_large_for_one_chunk():
    dz = da.zeros((2, 4096), chunks=(2, 1024))
    with dask.config.set({"sparsemax_nb.max-row-bytes": "16KiB"}):
        with pytest.raises(ValueError, match="max-row-bytes"):
            sm.sparsemax(dz)
    assert sm.sparsemax(dz).numblocks == (1, 1)  # default limit: merged into one chunk


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_loss_labels(reduction):
    z = _z((40, 7))
    y = np.arange(40) % 7
    y[[3, 9, 10]] = -100
    dz = da.from_array(z, chunks=(9, 7))
    dy = da.from_array(y, chunks=13)
    kw = dict(reduction=reduction, ignore_index=-100)
    L, G = sm.sparsemax_loss_and_grad(dz, dy, **kw)
    L2, G2 = sm.sparsemax_loss_and_grad(z, y, **kw)
    np.testing.assert_allclose(L.compute(), L2, rtol=1e-14, equal_nan=True)
    np.testing.assert_allclose(G.compute(), G2, rtol=1e-14, equal_nan=True)
    np.testing.assert_allclose(
        sm.sparsemax_loss(dz, y, **kw).compute(), sm.sparsemax_loss(z, y, **kw), rtol=1e-14,
    )
    np.testing.assert_allclose(
        sm.sparsemax_loss_grad(dz, y, **kw).compute(), G2, rtol=1e-14, equal_nan=True
    )


def test_loss_mean_counts_only_rows_not_ignored_and_all_ignored_is_nan():
    z = np.random.default_rng(2).standard_normal((10, 4)).astype(np.float32)
    y = np.array([0, 1, -1, -1, 2, 3, -1, 0, 1, 2])
    dz = da.from_array(z, chunks=(3, 4))
    got = sm.sparsemax_loss(dz, y, reduction="mean", ignore_index=-1).compute()
    want = sm.sparsemax_loss(z, y, reduction="mean", ignore_index=-1)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6)
    g = sm.sparsemax_loss_grad(dz, y, reduction="mean", ignore_index=-1).compute()
    np.testing.assert_allclose(
        g, sm.sparsemax_loss_grad(z, y, reduction="mean", ignore_index=-1), rtol=2e-7, atol=1e-9
    )
    allign = np.full(10, -1)
    assert np.isnan(sm.sparsemax_loss(dz, allign, reduction="mean", ignore_index=-1).compute())
    gz = sm.sparsemax_loss_grad(dz, allign, reduction="mean", ignore_index=-1).compute()
    assert (gz == 0).all()


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_loss_distributions(reduction):
    z = _z((25, 6))
    q = _dist(z.shape)
    dz = da.from_array(z, chunks=(6, 3))
    L, G = sm.sparsemax_loss_and_grad(dz, q, reduction=reduction)
    L2, G2 = sm.sparsemax_loss_and_grad(z, q, reduction=reduction)
    np.testing.assert_allclose(L.compute(), L2, rtol=1e-14, equal_nan=True)
    np.testing.assert_allclose(G.compute(), G2, rtol=1e-14, equal_nan=True)


def test_lazy_data_errors_name_the_global_row():
    z = np.zeros((20, 5))
    y = np.zeros(20, int)
    y[13] = 7
    L = sm.sparsemax_loss(da.from_array(z, chunks=(4, 5)), y)  # lazy: no error yet
    with pytest.raises(ValueError, match=r"class index 7 at batch position \(13,\)"):
        L.compute()
    q = _dist(z.shape)
    q[17] *= 3
    with pytest.raises(ValueError, match=r"row at batch position \(17,\) sums to"):
        sm.sparsemax_loss(da.from_array(z, chunks=(4, 5)), q).compute()
    lab = np.ones((9, 3), int)
    lab[6] = 0
    with pytest.raises(ValueError, match=r"position \(6,\) has no label"):
        sm.labels_to_proportions(da.from_array(lab, chunks=(2, 3))).compute()
    lab[6, 1] = 2
    with pytest.raises(ValueError, match=r"y\(6, 1\) = "):
        sm.labels_to_proportions(da.from_array(lab, chunks=(2, 3))).compute()


def test_labels_to_proportions():
    y = (np.random.default_rng(4).random((12, 5)) > 0.5)
    y[:, 0] = True
    got = sm.labels_to_proportions(da.from_array(y, chunks=(5, 2)))
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got.compute(), sm.labels_to_proportions(y))


def test_gpu_backed_dask_goes_through_the_gpu_path():
    cp = pytest.importorskip("cupy")
    try:
        cp.cuda.runtime.getDeviceCount()
    except Exception:  # pragma: no cover - no device
        pytest.skip("no CUDA device")
    pytest.importorskip("sparsemax_nb.backends.cuda")
    z = _z((16, 9))
    dz = da.from_array(cp.asarray(z), chunks=(4, 9))
    p = sm.sparsemax(dz).compute()
    assert isinstance(p, cp.ndarray)
    np.testing.assert_allclose(cp.asnumpy(p), sm.sparsemax(z), atol=1e-12)


# --------------------------------------------------------------------------- distributed
def _block_z(block_info=None):
    """Block of a deterministic array: seeded by the block's position."""
    (r0, _), (c0, _) = block_info[None]["array-location"]
    rng = np.random.default_rng([r0, c0])
    return rng.random(block_info[None]["chunk-shape"], dtype=np.float32) * 4


@pytest.mark.slow
def test_local_cluster_two_processes_larger_than_worker_memory(tmp_path):
    distributed = pytest.importorskip("distributed")
    # A worker process holding Numba and the compiled kernels already uses about 330 MB of
    # its own, so the limit is 600 MB a worker, and the array 640 MB (blocks of 16 MB).
    rows, K, rc = 80_000, 2_000, 2_000
    z = da.map_blocks(
        _block_z, chunks=((rc,) * (rows // rc), (K,)), dtype=np.float32,
        meta=np.empty((0, 0), np.float32),
    )
    y = da.arange(rows, chunks=rc) % K
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, memory_limit="600MB",
        dashboard_address=None, local_directory=str(tmp_path),
    ) as cluster, distributed.Client(cluster) as client:
        # Row statistics only come back: the result itself (384 MB) never fits one worker.
        p = sm.sparsemax(z)
        stats = da.stack([p.max(axis=1), (p > 0).sum(axis=1).astype(np.float32)])
        loss = sm.sparsemax_loss(z, y, reduction="mean")
        tau, k = sm.sparsemax_threshold(z)
        got_stats, got_loss, got_k = client.compute([stats, loss, k], sync=True)
    # The NumPy path on the same data, block by block in this process.
    zn = np.empty((rows, K), np.float32)
    for r in range(0, rows, rc):
        info = {None: {"array-location": [(r, r + rc), (0, K)], "chunk-shape": (rc, K)}}
        zn[r : r + rc] = _block_z(block_info=info)
    pn = sm.sparsemax(zn)
    np.testing.assert_array_equal(got_stats[0], pn.max(axis=1))
    np.testing.assert_array_equal(got_stats[1], (pn > 0).sum(axis=1))
    np.testing.assert_array_equal(got_k, got_stats[1])
    yn = np.arange(rows) % K
    np.testing.assert_allclose(got_loss, sm.sparsemax_loss(zn, yn, reduction="mean"), rtol=1e-6)
