"""``sparsemax-nb bench``: it runs, prints its table and writes the JSON it promises.

Only the shape of the output is checked, never a timing (docs/contract.md, section 7). The hidden
``--tiny`` preset keeps the run to seconds plus one cold compile in a subprocess.
"""

import json
import subprocess
import sys
import types

import numpy as np
import pytest

from sparsemax_nb.cli.bench import cpu as _bench
from sparsemax_nb.cli import main

ROW_KEYS = {
    "case", "kernel", "reference", "dtype", "shape", "s", "number", "rounds", "median_s",
    "ratio_copyto", "ratio_softmax", "ratio_numpy_sparsemax", "ratio_entmax", "ratio_optax",
}
KERNELS = {
    "sparsemax[sort]", "sparsemax[select]", "sparsemax[auto]", "sparsemax_threshold",
    "sparsemax_jvp", "sparsemax_loss_and_grad",
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One full ``--tiny`` run in a subprocess, through the installed entry point's module."""
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    r = subprocess.run(
        [sys.executable, "-m", "sparsemax_nb", "bench", "--tiny", "--json", str(path)],
        capture_output=True, text=True, timeout=600,
    )
    assert r.returncode == 0, r.stderr
    with open(path) as f:
        return r.stdout, r.stderr, json.load(f)


def test_json_rows(tiny_run):
    _, _, data = tiny_run
    meta, rows = data["meta"], data["rows"]
    for key in ("numba_threads", "threading_layer", "cpu", "numpy", "numba", "rounds"):
        assert key in meta
    assert meta["numba_threads"] >= 1
    assert rows and all(ROW_KEYS <= set(row) for row in rows)
    cases = [r for r in rows if r["case"] not in ("growth", "compile", "sweep", "loss")
             and not r["case"].startswith("entmax")]
    assert {r["case"] for r in cases} >= {"large batch", "huge row", "tiny rows", "small call", "peers"}
    for case in {r["case"] for r in cases}:
        names = {r["kernel"] for r in cases if r["case"] == case}
        assert KERNELS | {"copyto", "softmax", "numpy_sparsemax"} <= names, case
    for r in cases:
        assert r["median_s"] > 0
        assert r["dtype"] in ("float32", "float64")
        for ref in ("copyto", "softmax", "numpy_sparsemax"):
            assert r[f"ratio_{ref}"] > 0
        if r["kernel"] == "copyto":
            assert r["ratio_copyto"] == pytest.approx(1.0)
    small = [r for r in cases if r["case"] == "small call"]
    assert all(r["number"] > 1 for r in small)


def test_json_growth_and_compile(tiny_run):
    _, _, data = tiny_run
    growth = [r for r in data["rows"] if r["case"] == "growth"]
    kinds = {r["input"] for r in growth}
    assert kinds == {"random", "sorted", "all equal", "geometric", "two clusters"}
    assert all(r["ns_per_element"] > 0 and r["kernel"] == "sparsemax[select]" for r in growth)
    assert len({r["K"] for r in growth}) >= 2
    comp = [r for r in data["rows"] if r["case"] == "compile"]
    assert {(r["cache"], r["kernel"]) for r in comp} == {
        (c, k) for c in ("cold", "warm") for k in ("import", "first call", "process wall")
    }
    assert all(r["median_s"] > 0 for r in comp)


def test_json_sweep_and_loss(tiny_run):
    _, _, data = tiny_run
    sweep = [r for r in data["rows"] if r["case"] == "sweep"]
    Ks = {r["K"] for r in sweep}
    assert min(Ks) == 2 and len(Ks) >= 3
    for K in Ks:
        for s in (1.0, 0.1):
            got = {r["kernel"] for r in sweep if r["K"] == K and r["s"] == s}
            assert got == {"sparsemax", "sparsemax (alloc)", "copyto", "softmax"}, (K, s)
    for r in sweep:
        assert r["dtype"] == "float32" and r["shape"][1] == r["K"]
        assert r["ns_per_row"] > 0 and r["ratio_copyto"] > 0 and r["ratio_softmax"] > 0
    loss = [r for r in data["rows"] if r["case"] == "loss"]
    assert {tuple(r["shape"]) for r in loss} and all(r["ratio_softmax_xent"] > 0 for r in loss)
    assert {"sparsemax_loss_and_grad", "copyto", "softmax_xent_and_grad"} <= {r["kernel"] for r in loss}


def test_softmax_xent_reference():
    z = np.random.default_rng(0).standard_normal((5, 7))
    y = np.array([0, 3, 6, 2, 2])
    loss, grad = _bench._softmax_xent_and_grad(z, y)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    assert loss == pytest.approx(-np.log(p[np.arange(5), y]).mean())
    np.testing.assert_allclose(grad, (p - np.eye(7)[y]) / 5, atol=1e-15)


def test_printed_report(tiny_run):
    out, _, _ = tiny_run
    assert "Numba threads:" in out and "threading layer:" in out
    assert "NumPy" in out and "Numba" in out and "CPU:" in out
    assert "x copyto" in out and "x np-spmax" in out
    assert "max/min" in out
    assert "sweep:" in out and "ns per row" in out and "x softmax-xent" in out
    assert "cold" in out and "warm" in out


def test_peer_columns_when_installed(tiny_run):
    _, _, data = tiny_run
    peers = [r for r in data["rows"] if r["case"] == "peers"]
    for name, mods in (("entmax", ("torch", "entmax")), ("optax", ("jax", "optax"))):
        try:
            for m in mods:
                __import__(m)
        except Exception:
            assert all(r[f"ratio_{name}"] is None for r in peers)
        else:
            assert all(r[f"ratio_{name}"] > 0 for r in peers), name


def test_bad_arguments(capsys):
    assert main(["bench", "--tiny", "--repeat", "0"]) == 2
    assert main(["bench", "--tiny", "--only", "nonsense"]) == 2


def test_only_one_section(tmp_path, capsys):
    path = tmp_path / "g.json"
    rc = main(["bench", "--tiny", "--only", "growth", "--no-progress", "--repeat", "1",
               "--json", str(path)])
    assert rc == 0
    rows = json.loads(path.read_text())["rows"]
    assert rows and {r["case"] for r in rows} == {"growth"}


def test_cuda_missing_module(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sparsemax_nb.cli.bench.gpu", None)  # import fails
    assert main(["bench", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not available" in err[0]


def test_cuda_no_gpu(monkeypatch, capsys):
    fake = types.ModuleType("sparsemax_nb.cli.bench.gpu")
    fake.bench_cuda = lambda quick: pytest.fail("must not be called without a GPU")
    monkeypatch.setitem(sys.modules, "sparsemax_nb.cli.bench.gpu", fake)
    monkeypatch.setattr(_bench, "_cuda_unavailable_reason", lambda: "no usable CUDA GPU found")
    assert main(["bench", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["sparsemax-nb bench --device cuda: no usable CUDA GPU found"]


def test_cuda_table_and_json(monkeypatch, capsys, tmp_path):
    seen = []
    fake = types.ModuleType("sparsemax_nb.cli.bench.gpu")

    def bench_cuda(quick):
        seen.append(quick)
        return [{"case": "batch", "kernel": "sparsemax", "median_s": 1.5e-4, "ratio_copyto": 3.0}]

    fake.bench_cuda = bench_cuda
    monkeypatch.setitem(sys.modules, "sparsemax_nb.cli.bench.gpu", fake)
    monkeypatch.setattr(_bench, "_cuda_unavailable_reason", lambda: None)
    path = tmp_path / "cuda.json"
    assert main(["bench", "--device", "cuda", "--quick", "--json", str(path)]) == 0
    assert seen == [True]
    out = capsys.readouterr().out
    assert "ratio_copyto" in out and "sparsemax" in out
    assert json.loads(path.read_text())["rows"][0]["kernel"] == "sparsemax"


def test_cuda_error_is_one_line(monkeypatch, capsys):
    fake = types.ModuleType("sparsemax_nb.cli.bench.gpu")

    def bench_cuda(quick):
        raise RuntimeError("device lost")

    fake.bench_cuda = bench_cuda
    monkeypatch.setitem(sys.modules, "sparsemax_nb.cli.bench.gpu", fake)
    monkeypatch.setattr(_bench, "_cuda_unavailable_reason", lambda: None)
    assert main(["bench", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "device lost" in err[0]


def test_simple_progress_without_rich(capsys):
    with _bench._SimpleProgress(4, True) as p:
        p.describe("case a")
        for _ in range(4):
            p.advance()
    err = capsys.readouterr().err
    assert "100.0%" in err


def test_median_ratio_pairs_rounds():
    # the same-round pairing cancels a slow round that hits both
    assert _bench._median_ratio([1.0, 10.0, 1.0], [2.0, 20.0, 2.0]) == pytest.approx(0.5)
    assert _bench._median_ratio([1.0], None) is None
    calls = []
    fns = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    times = _bench._time_rounds(fns, 1, 2)
    assert calls == ["a", "b", "b", "a"]  # the order rotates each round
    assert all(len(v) == 2 for v in times.values())
