"""``sparsemax-nb multilabel``: the paper's multi-label experiment (section 4.1).

Trains the logistic, softmax and sparsemax linear models on the built-in synthetic documents
(or an ARFF data set), tunes each model's L2 strength on a development split and its label
rule by cross-validation on the training split, and prints micro / macro F1 of the predicted
label sets and the MSE and Jensen-Shannon divergence of the predicted proportions.
"""

import sys
import time


def add_arguments(parser):
    parser.add_argument(
        "--data", default="synthetic",
        help="'synthetic' (default: the paper's synthetic documents) or the path of an ARFF file",
    )
    parser.add_argument(
        "--labels", type=int, default=None,
        help="synthetic: number of labels K (default 10; the paper uses 10 and 50); "
        "ARFF: number of label attributes (the last N; MEKA '-C N' headers are read)",
    )
    parser.add_argument("--xml", default=None, help="ARFF: Mulan XML file naming the labels")
    parser.add_argument("--test", default=None, help="ARFF: a separate test file (default: a 25%% split)")
    parser.add_argument(
        "--length", type=float, default=50.0, help="synthetic: mean document length L (default 50)"
    )
    parser.add_argument(
        "--sweep-lengths", default=None, metavar="L1,L2,...",
        help="synthetic: also run every length in the list and print JSD and F1 against L",
    )
    parser.add_argument(
        "--alphas", default="1e-6,1e-5,1e-4,1e-3,1e-2",
        help="L2 strengths tried on the development split (default 1e-6,1e-5,1e-4,1e-3,1e-2)",
    )
    parser.add_argument("--cv", type=int, default=3, help="folds for tuning the label rule (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


class _Progress:
    """A one-line text progress bar on stderr."""

    def __init__(self, total, enabled=True):
        self.total, self.done, self.enabled = total, 0, enabled
        self.t0 = time.perf_counter()

    def step(self, label):
        self.done += 1
        if not self.enabled:
            return
        w = 30
        fill = int(w * self.done / max(self.total, 1))
        el = time.perf_counter() - self.t0
        sys.stderr.write(
            f"\r[{'#' * fill}{'.' * (w - fill)}] {self.done}/{self.total} {el:5.1f}s {label:<40.40}"
        )
        sys.stderr.flush()

    def close(self):
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


MODELS = ("logistic", "softmax", "sparsemax")


def _estimator(name, alpha, cv, seed):
    from ..apps.multilabel import LogisticClassifier, SoftmaxClassifier, SparsemaxClassifier

    cls = {"logistic": LogisticClassifier, "softmax": SoftmaxClassifier, "sparsemax": SparsemaxClassifier}
    return cls[name](alpha=alpha, cv=cv, random_state=seed)


def _evaluate(est, X, Y, Q):
    from ..apps.datasets import js_divergence, macro_f1, mean_squared_error, micro_f1

    P = est.predict_proba(X)
    Yp = est.predict(X)
    return {
        "micro_f1": micro_f1(Y, Yp),
        "macro_f1": macro_f1(Y, Yp),
        "mse": mean_squared_error(Q, P),
        "jsd": js_divergence(Q, P),
    }


def _run(train, dev, test, alphas, cv, seed, progress, tag=""):
    """Pick alpha on dev per metric kind, refit with the label rule tuned by CV, test.

    Every alpha is fitted once on train with a fixed label rule. The label-set metrics (F1)
    use the alpha whose dev micro F1 is best when the rule (threshold or scale) is also
    picked on dev; the model is then refitted at that alpha with the rule tuned by
    cross-validation on train (as the paper), and tested. The proportion metrics (MSE,
    JSD), which no label rule affects, use the alpha with the lowest dev JSD. The same
    procedure serves every model.
    """
    from ..apps.datasets import js_divergence, micro_f1

    rows = {}
    for name in MODELS:
        fitted = []
        for a in alphas:
            est = _estimator(name, a, cv, seed)
            est.set_params(**{est._cv_param: est._default_rule()}).fit(train[0], train[1])
            Z = est.decision_function(dev[0])
            f1 = max(micro_f1(dev[1], est._labels_from_scores(Z, float(r))) for r in est._cv_grid)
            jsd = js_divergence(dev[2], est.predict_proba(dev[0]))
            fitted.append((a, est, f1, jsd))
            progress.step(f"{tag}{name} alpha={a:g}")
        a_f1 = max(fitted, key=lambda r: r[2])[0]
        a_js, est_js, _, _ = min(fitted, key=lambda r: r[3])
        est_f1 = _estimator(name, a_f1, cv, seed).fit(train[0], train[1])  # rule by CV
        progress.step(f"{tag}{name} CV of the label rule")
        lab = _evaluate(est_f1, *test)
        prop = _evaluate(est_js, *test)
        rule = est_f1._cv_param
        rows[name] = {
            "micro_f1": lab["micro_f1"],
            "macro_f1": lab["macro_f1"],
            "mse": prop["mse"],
            "jsd": prop["jsd"],
            "alpha_f1": a_f1,
            "alpha_proportions": a_js,
            "rule": rule,
            "rule_value": float(getattr(est_f1, rule + "_")),
            "dev": {f"{a:g}": {"micro_f1_best_rule": f, "jsd": j} for a, _, f, j in fitted},
        }
    return rows


def _table(rows, out):
    out.write(f"  {'model':<10} {'micro-F1':>9} {'macro-F1':>9} {'MSE':>8} {'JSD':>8}   tuned\n")
    for name, r in rows.items():
        out.write(
            f"  {name:<10} {r['micro_f1']:9.4f} {r['macro_f1']:9.4f} {r['mse']:8.4f} {r['jsd']:8.4f}"
            f"   F1: alpha={r['alpha_f1']:g} {r['rule']}={r['rule_value']:.3g};"
            f" proportions: alpha={r['alpha_proportions']:g}\n"
        )


def _synthetic_splits(K, L, seed):
    import scipy.sparse as sp

    from ..apps.datasets import make_synthetic

    d = make_synthetic(K, L, seed=seed)
    # Bag-of-words rows are sparse: CSR makes X W and X^T G cheap.
    return [(sp.csr_matrix(s.X), s.Y, s.Q) for s in (d["train"], d["dev"], d["test"])]


def _arff_splits(args):
    import numpy as np

    from ..api import labels_to_proportions
    from ..apps.datasets import load_arff

    tr = load_arff(args.data, args.labels, xml=args.xml)
    rng = np.random.default_rng(args.seed)
    keep = tr.Y.any(axis=1)  # the proportions q = y / sum(y) need a label per row
    X, Y = tr.X[keep], tr.Y[keep]
    if args.test:
        te = load_arff(args.test, args.labels, xml=args.xml)
        k2 = te.Y.any(axis=1)
        Xte, Yte = te.X[k2], te.Y[k2]
        idx = rng.permutation(len(X))
    else:
        idx = rng.permutation(len(X))
        n_te = len(X) // 4
        Xte, Yte = X[idx[:n_te]], Y[idx[:n_te]]
        X, Y = X[idx[n_te:]], Y[idx[n_te:]]
        idx = rng.permutation(len(X))
    n_dev = max(len(X) // 6, 1)
    Xdev, Ydev = X[idx[:n_dev]], Y[idx[:n_dev]]
    Xtr, Ytr = X[idx[n_dev:]], Y[idx[n_dev:]]
    # Standardise with training statistics; NaN (missing) features become 0 (the mean).
    mu = np.nanmean(Xtr, axis=0)
    sd = np.nanstd(Xtr, axis=0)
    sd = np.where(sd > 0, sd, 1.0)

    def prep(A):
        return np.nan_to_num((A - mu) / sd)

    return [
        (prep(A), B, labels_to_proportions(B)) for A, B in ((Xtr, Ytr), (Xdev, Ydev), (Xte, Yte))
    ], (tr.label_names)


def main(args):
    import json

    alphas = [float(a) for a in args.alphas.split(",") if a.strip()]
    if not alphas:
        print("error: --alphas is empty", file=sys.stderr)
        return 2
    report = {"data": args.data, "seed": args.seed, "alphas": alphas, "cv": args.cv}
    show = not args.no_progress
    t0 = time.perf_counter()
    if args.data == "synthetic":
        K = args.labels or 10
        lengths = [args.length]
        if args.sweep_lengths:
            lengths = [float(x) for x in args.sweep_lengths.split(",") if x.strip()]
        report.update(labels=K, n_train=1200, n_dev=200, n_test=1000)
        prog = _Progress(len(lengths) * len(MODELS) * (len(alphas) + 1), show)
        results = {}
        for L in lengths:
            splits = _synthetic_splits(K, L, args.seed)
            results[L] = _run(*splits, alphas, args.cv, args.seed, prog, f"L={L:g} ")
        prog.close()
        for L, rows in results.items():
            print(f"synthetic documents: K = {K} labels, mean length L = {L:g} "
                  "(1200 train / 200 dev / 1000 test)")
            _table(rows, sys.stdout)
            print()
        if len(lengths) > 1:
            print("Jensen-Shannon divergence of the proportions against document length L")
            print(f"  {'L':>6} " + " ".join(f"{m:>10}" for m in MODELS) + "   sparsemax < softmax")
            for L, rows in results.items():
                print(f"  {L:6g} " + " ".join(f"{rows[m]['jsd']:10.4f}" for m in MODELS)
                      + f"   {'yes' if rows['sparsemax']['jsd'] < rows['softmax']['jsd'] else 'no'}")
            print()
        report["results"] = {f"{L:g}": rows for L, rows in results.items()}
    else:
        try:
            splits, label_names = _arff_splits(args)
        except (OSError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        prog = _Progress(len(MODELS) * (len(alphas) + 1), show)
        rows = _run(*splits, alphas, args.cv, args.seed, prog)
        prog.close()
        n = [len(s[1]) for s in splits]
        print(f"{args.data}: {splits[0][0].shape[1]} features, {len(label_names)} labels "
              f"({n[0]} train / {n[1]} dev / {n[2]} test)")
        _table(rows, sys.stdout)
        report.update(labels=len(label_names), results=rows)
    print("micro/macro F1 of the predicted label sets (alpha tuned on dev micro F1); MSE (sum over"
          " labels, mean over documents) and JSD (nats) of the predicted proportions (alpha tuned"
          f" on dev JSD); {time.perf_counter() - t0:.1f}s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)
    return 0
