"""Profile the three linear multi-label models on a TMC2007-500-like synthetic set.

21,519 rows, 500 sparse binary features, 22 labels (cardinality about 2.2). Prints, per
model and alpha: fit time, L-BFGS iterations, function evaluations, and the cost of one
evaluation split into X @ W, the loss and gradient, and X^T @ G, for dense and CSR X.

    python scripts/profile_multilabel_fit.py [--alphas 1e-4,1e-2] [--repeat 3]
"""
import argparse
import time

import numpy as np
import scipy.sparse as sp

from sparsemax_nb.multilabel import LogisticClassifier, SoftmaxClassifier, SparsemaxClassifier


def tmc_like(n=21519, d=500, K=22, density=0.05, seed=0):
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=density, format="csr", random_state=seed, data_rvs=np.ones)
    W = rng.normal(size=(d, K)) * (rng.random((d, K)) < 0.1) * 3
    Z = X @ W + rng.normal(size=(n, K)) + rng.normal(size=K) * 0.5 - 4.0
    Y = (Z > 0).astype(np.int8)
    Y[np.arange(n), np.argmax(Z, axis=1)] = 1
    return X, Y


def per_eval(est, X, Y, reps=5):
    Q, Ybin = est._encode_targets(Y)
    d, K = X.shape[1], Y.shape[1]
    w = np.random.default_rng(1).normal(size=d * K + K) * 0.1
    W = w[: d * K].reshape(d, K)
    t = {}
    for name, fn in (
        ("XW", lambda: np.asarray(X @ W) + w[d * K:]),
    ):
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter(); Z = fn(); ts.append(time.perf_counter() - t0)
        t[name] = np.median(ts)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter(); _, G = est._loss_grad(Z, Q, Ybin); ts.append(time.perf_counter() - t0)
    t["loss"] = np.median(ts)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter(); np.asarray(X.T @ G); ts.append(time.perf_counter() - t0)
    t["XtG"] = np.median(ts)
    f = est._objective(X, Q, Ybin)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter(); f(w); ts.append(time.perf_counter() - t0)
    t["total"] = np.median(ts)
    return t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--alphas", default="1e-4,1e-2")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--dense", action="store_true")
    ap.add_argument("--n", type=int, default=21519)
    ap.add_argument("--models", default="LogisticClassifier,SoftmaxClassifier,SparsemaxClassifier")
    a = ap.parse_args()
    X, Y = tmc_like(n=a.n)
    print(f"X {X.shape} nnz/row {X.nnz / X.shape[0]:.1f}, cardinality {Y.sum(1).mean():.2f}")
    sel = {c.__name__: c for c in (LogisticClassifier, SoftmaxClassifier, SparsemaxClassifier)}
    for cls in [sel[m] for m in a.models.split(',')]:
        rule = {"scale": 1.0} if cls is SparsemaxClassifier else {"threshold": 0.5}
        for Xk, kind in ((X, "csr"), (X.toarray(), "dense")):
            if kind == "dense" and not a.dense:
                continue
            pe = per_eval(cls(**rule), Xk, Y)
            print(f"{cls.__name__:20s} {kind:5s} per eval ms: " + " ".join(f"{k}={v*1e3:.2f}" for k, v in pe.items()))
            for alpha in [float(s) for s in a.alphas.split(",")]:
                ts = []
                for _ in range(a.repeat):
                    est = cls(alpha=alpha, **rule)
                    t0 = time.perf_counter(); est.fit(Xk, Y); ts.append(time.perf_counter() - t0)
                print(f"   alpha={alpha:g}: fit {np.median(ts):.2f}s iters {est.n_iter_} nfev {getattr(est, 'n_fev_', '?')}")


if __name__ == "__main__":
    main()
