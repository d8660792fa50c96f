"""Profile the three linear multi-label models on a TMC2007-500-like synthetic set.

21,519 rows, 500 sparse binary features (25 per row), 22 labels. Prints the cost of one
objective evaluation split into ``X @ W``, the loss and gradient, and ``X^T @ G`` (CSR and,
with ``--dense``, dense ``X``), then fit times with L-BFGS iterations and evaluations. The
models are timed in turn within each round (paired), and medians over rounds are reported.

    PYTHONPATH=. python scripts/profile_multilabel_fit.py [--alphas 1e-4,1e-2] [--rounds 3]
"""
import argparse
import time

import numpy as np
import scipy.sparse as sp

from sparsemax_nb.apps.multilabel import LogisticClassifier, SoftmaxClassifier, SparsemaxClassifier

MODELS = {"logistic": (LogisticClassifier, {"threshold": 0.5}),
          "softmax": (SoftmaxClassifier, {"threshold": 0.5}),
          "sparsemax": (SparsemaxClassifier, {"scale": 1.0}),
          "entmax15": (SparsemaxClassifier, {"scale": 1.0, "loss": "entmax15"})}


def tmc_like(n=21519, d=500, K=22, density=0.05, seed=0):
    """Binary sparse features, labels from a sparse linear model (about 4 labels per row)."""
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=density, format="csr", random_state=seed, data_rvs=np.ones)
    W = rng.normal(size=(d, K)) * (rng.random((d, K)) < 0.1) * 3
    Z = X @ W + rng.normal(size=(n, K)) + rng.normal(size=K) * 0.5 - 4.0
    Y = (Z > 0).astype(np.int8)
    Y[np.arange(n), np.argmax(Z, axis=1)] = 1
    return X, Y


def _median_ms(fn, reps=7):
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(ts))


def per_eval(est, X, Y):
    Q, Ybin = est._encode_targets(Y)
    d, K = X.shape[1], Y.shape[1]
    w = np.random.default_rng(1).normal(size=d * K + K) * 0.1
    W = w[: d * K].reshape(d, K)
    Z = np.asarray(X @ W) + w[d * K:]
    _, G = est._loss_grad(Z, Q, Ybin)
    f = est._objective(X, Q, Ybin)
    return {"XW": _median_ms(lambda: X @ W), "loss": _median_ms(lambda: est._loss_grad(Z, Q, Ybin)),
            "XtG": _median_ms(lambda: X.T @ G), "objective": _median_ms(lambda: f(w))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--alphas", default="1e-4,1e-2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dense", action="store_true", help="also profile dense X")
    ap.add_argument("--models", default="logistic,softmax,sparsemax")
    ap.add_argument("--mulan", default=None, metavar="DIR",
                    help="time the fits on DIR/{scene,emotions,birds}-train.arff instead")
    a = ap.parse_args()
    if a.mulan:
        return mulan_times(a)
    X, Y = tmc_like()
    names = a.models.split(",")
    print(f"X {X.shape}, {X.nnz / X.shape[0]:.1f} non-zeros per row; {Y.shape[1]} labels, "
          f"{Y.sum(1).mean():.2f} per row")
    kinds = [("csr", X)] + ([("dense", X.toarray())] if a.dense else [])
    for kind, Xk in kinds:
        for m in names:
            cls, rule = MODELS[m]
            pe = per_eval(cls(**rule), Xk, Y)
            print(f"{m:10s} {kind:5s} one evaluation, ms: " + " ".join(f"{k} {v:.2f}" for k, v in pe.items()))
        for alpha in [float(s) for s in a.alphas.split(",")]:
            times = {m: [] for m in names}
            info = {}
            for _ in range(a.rounds):
                for m in names:
                    cls, rule = MODELS[m]
                    est = cls(alpha=alpha, **rule)
                    t0 = time.perf_counter()
                    est.fit(Xk, Y)
                    times[m].append(time.perf_counter() - t0)
                    info[m] = (est.n_iter_, est.n_fev_)
            med = {m: float(np.median(v)) for m, v in times.items()}
            line = "  ".join(f"{m} {med[m]:.2f}s ({info[m][0]} it, {info[m][1]} ev)" for m in names)
            ratio = f"  sparsemax/softmax {med['sparsemax'] / med['softmax']:.2f}" if {"sparsemax", "softmax"} <= set(names) else ""
            print(f"  {kind} alpha={alpha:g}: {line}{ratio}", flush=True)


def mulan_times(a):
    """Fit times of the models at the same alphas on the Mulan training sets (standardised)."""
    import os

    from sparsemax_nb.apps.datasets import load_arff

    names = a.models.split(",")
    for set_name in ("scene", "emotions", "birds"):
        ds = load_arff(os.path.join(a.mulan, f"{set_name}-train.arff"),
                       xml=os.path.join(a.mulan, f"{set_name}.xml"))
        keep = ds.Y.any(axis=1)
        X, Y = ds.X[keep], ds.Y[keep]
        sd = X.std(0)
        X = (X - X.mean(0)) / np.where(sd > 0, sd, 1)
        for alpha in [float(s) for s in a.alphas.split(",")]:
            times = {m: [] for m in names}
            info = {}
            for _ in range(a.rounds):
                for m in names:
                    cls, rule = MODELS[m]
                    est = cls(alpha=alpha, **rule)
                    t0 = time.perf_counter()
                    est.fit(X, Y)
                    times[m].append(time.perf_counter() - t0)
                    info[m] = est.n_iter_
            med = {m: float(np.median(v)) for m, v in times.items()}
            line = "  ".join(f"{m} {1e3 * med[m]:7.1f} ms ({info[m]} it)" for m in names)
            ratio = (f"  sparsemax/softmax {med['sparsemax'] / med['softmax']:.2f}"
                     if {"sparsemax", "softmax"} <= set(names) else "")
            print(f"{set_name:9s} alpha={alpha:<6g} {line}{ratio}", flush=True)


if __name__ == "__main__":
    main()
