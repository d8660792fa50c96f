"""``sparsemax-nb multilabel``: the paper's multi-label experiment (section 4.1).

Trains the logistic, softmax and sparsemax linear models and prints micro / macro F1 of the
predicted label sets. ``--loss entmax15`` adds a fourth model, the same linear classifier
trained with the 1.5-entmax (Tsallis-1.5) Fenchel-Young loss, predicting the support of
``entmax15(t z)``: a row beside sparsemax in every table, with the same protocol.

* Real data (``--data PATH`` to an ARFF file, or ``--paper`` for Scene, Emotions and Birds):
  the labels are found automatically (a Mulan XML file beside the data, else the trailing
  ``{0,1}`` attributes); the Mulan test split is used when there is one (``--test``, or the
  ``-test`` file beside a ``-train`` file); features are standardised with training
  statistics; the same ``alpha`` grid is searched for every model by K-fold
  cross-validation on the training set, each model's label rule (threshold or scale) being
  tuned on the same out-of-fold scores; the chosen model is refitted on the whole training
  set and tested once. Differences between models come with a paired bootstrap interval.
* Synthetic documents (the default): the paper's 1200 / 200 / 1000 split, ``alpha`` tuned
  on the development split, with the MSE and Jensen-Shannon divergence of the proportions.
"""

import os
import sys
import time

MODELS = ("logistic", "softmax", "sparsemax")
# --loss: the losses of the sparse model; each but "sparsemax" (always run: the paper's
# model) adds a row. The classifier's own list is sparsemax_nb.apps.multilabel.LOSSES, not
# imported here: building the parser must not import scikit-learn (a test keeps them equal).
LOSSES = ("sparsemax", "entmax15")
# The estimator parameters of a model that is not a class of its own.
_MODEL_PARAMS = {"entmax15": {"loss": "entmax15"}}
PAPER_SETS = ("scene", "emotions", "birds")

# Martins & Astudillo (2016), "From Softmax to Sparsemax", ICML, Table 2: micro-F1 and
# macro-F1 (%) on the Mulan test splits. Transcribed from the published table without
# access to the paper here: UNVERIFIED until someone checks them against it.
PAPER_TABLE2 = {
    "scene": {"logistic": (70.96, 72.95), "softmax": (74.01, 75.03), "sparsemax": (73.45, 74.57)},
    "emotions": {"logistic": (66.75, 68.56), "softmax": (67.34, 67.51), "sparsemax": (66.38, 66.07)},
    "birds": {"logistic": (45.78, 33.77), "softmax": (48.67, 37.06), "sparsemax": (49.44, 39.13)},
}
PAPER_NOTE = (
    "paper: Martins & Astudillo (2016), Table 2 (micro / macro F1, %), UNVERIFIED transcription"
)

# Wide enough that the cross-validated optimum is inside it on the sets tried (features
# standardised, mean loss per row: Scene, Emotions and Birds pick 1e-2 .. 3, several decades
# from either end); an optimum at an end is reported. Smaller values cost the most L-BFGS
# iterations and were never picked on those sets, hence the lower end.
DEFAULT_ALPHAS_REAL = tuple(10.0 ** (k / 2) for k in range(-10, 5))  # 1e-5 .. 1e2
DEFAULT_ALPHAS_SYNTHETIC = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
ML_EXTRA = 'error: sparsemax-nb multilabel needs scikit-learn and scipy: pip install "sparsemax_nb[ml]"'


def add_arguments(parser):
    parser.add_argument(
        "--data", default="synthetic",
        help="'synthetic' (default: the paper's synthetic documents) or the path of an ARFF file",
    )
    parser.add_argument(
        "--paper", action="store_true",
        help="run Scene, Emotions and Birds (Mulan splits) and print the table beside the "
        "paper's Table 2; the files come from --data-dir, else the fetch_mulan cache "
        "(downloaded once)",
    )
    parser.add_argument(
        "--loss", choices=LOSSES, default="sparsemax",
        help="the loss of the sparse model: 'sparsemax' (default: the paper's three models) "
        "or 'entmax15', which adds the model trained with the 1.5-entmax loss (labels: the "
        "support of entmax15(t z)) as a row beside sparsemax, logistic and softmax",
    )
    parser.add_argument(
        "--sets", default=",".join(PAPER_SETS),
        help="--paper: comma-separated set names (default scene,emotions,birds)",
    )
    parser.add_argument(
        "--data-dir", default=None, metavar="DIR",
        help="--paper: a directory holding NAME-train.arff, NAME-test.arff and NAME.xml "
        "(no download, no checksum)",
    )
    parser.add_argument(
        "--labels", type=int, default=None,
        help="synthetic: number of labels K (default 10; the paper uses 10 and 50); "
        "ARFF: number of label attributes, the last N (default: from the Mulan XML beside "
        "the file, a MEKA '-C N' header, or the trailing {0,1} attributes)",
    )
    parser.add_argument(
        "--xml", default=None,
        help="ARFF: Mulan XML file naming the labels (default: NAME.xml beside the data, if any)",
    )
    parser.add_argument(
        "--test", default=None,
        help="ARFF: the test file (default: the -test file beside a -train file; failing "
        "that, a random 25%% of the data, said in the output)",
    )
    parser.add_argument(
        "--unlabelled", choices=("keep", "drop"), default=None,
        help="ARFF rows with no label: 'keep' (the default with --data) evaluates on the "
        "whole test split as given and trains on every row (the sparsemax and softmax losses "
        "have no proportions for such a row and skip it; the logistic loss uses it as "
        "all-negative); 'drop' (the default with --paper, the protocol that reproduces the "
        "paper's Birds figures) removes them from training and test. The counts are printed "
        "in every table, and with 'keep' the F1 on the labelled test rows as well",
    )
    parser.add_argument(
        "--length", type=float, default=50.0, help="synthetic: mean document length L (default 50)"
    )
    parser.add_argument(
        "--sweep-lengths", default=None, metavar="L1,L2,...",
        help="synthetic: also run every length in the list and print JSD and F1 against L",
    )
    parser.add_argument(
        "--alphas", default=None,
        help="L2 strengths tried, comma-separated (ARFF default: 15 values 1e-5 .. 1e2, "
        "half a decade apart; synthetic default 1e-6,1e-5,1e-4,1e-3,1e-2)",
    )
    parser.add_argument(
        "--cv", type=int, default=None,
        help="folds of the cross-validation on the training set (ARFF: alpha and label rule, "
        "default 5; synthetic: the label rule, default 3)",
    )
    parser.add_argument(
        "--bootstrap", type=int, default=1000,
        help="paired bootstrap resamples of the test rows for the intervals (default 1000; 0: none)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


class _Progress:
    """A one-line text progress bar on stderr."""

    def __init__(self, total, enabled=True):
        self.total, self.done, self.enabled = total, 0, enabled
        self.t0 = time.perf_counter()

    def step(self, label, n=1):
        self.done += n
        if not self.enabled:
            return
        w = 30
        fill = int(w * min(self.done, self.total) / max(self.total, 1))
        el = time.perf_counter() - self.t0
        sys.stderr.write(
            f"\r[{'#' * fill}{'.' * (w - fill)}] {self.done}/{self.total} {el:5.1f}s {label:<40.40}"
        )
        sys.stderr.flush()

    def close(self):
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _classes():
    from ..apps.multilabel import LogisticClassifier, SoftmaxClassifier, SparsemaxClassifier

    return {"logistic": LogisticClassifier, "softmax": SoftmaxClassifier,
            "sparsemax": SparsemaxClassifier, "entmax15": SparsemaxClassifier}


def _models(loss):
    """The rows of the tables: the paper's three models, and the model of ``loss`` if other."""
    return MODELS + tuple(m for m in (loss,) if m not in MODELS)


def _new(name, **params):
    """A fresh estimator of model ``name`` (``params`` as for its class)."""
    return _classes()[name](**_MODEL_PARAMS.get(name, {}), **params)


def _estimator(name, alpha, cv, seed):
    return _new(name, alpha=alpha, cv=cv, random_state=seed)


# --------------------------------------------------------------------------- real data
def _beside(path, kind):
    """The Mulan companion of a data file: ``kind`` "xml" (NAME.xml) or "test" (the -test file)."""
    d, base = os.path.split(os.fspath(path))
    stem = base[:-5] if base.lower().endswith(".arff") else base
    if kind == "test":
        for a, b in (("-train", "-test"), ("_train", "_test"), ("train", "test"), ("Train", "Test")):
            i = stem.rfind(a)
            if i >= 0:
                cand = os.path.join(d, stem[:i] + b + stem[i + len(a):] + ".arff")
                if os.path.exists(cand) and os.path.abspath(cand) != os.path.abspath(path):
                    return cand
        return None
    names = [stem]
    for suffix in ("-train", "_train", "-test", "_test", "train", "test", "Train", "Test"):
        if stem.endswith(suffix) and len(stem) > len(suffix):
            names.append(stem[: -len(suffix)].rstrip("-_"))
    for n in names:
        cand = os.path.join(d, n + ".xml")
        if os.path.exists(cand):
            return cand
    return None


def _load(path, labels, xml):
    """Load an ARFF file; returns the data set and how its labels were found."""
    from ..apps.datasets import load_arff

    if xml is not None:
        return load_arff(path, xml=xml), f"labels named in {os.path.basename(xml)}"
    if labels is not None:
        return load_arff(path, labels), f"the last {labels} attributes (--labels)"
    found = _beside(path, "xml")
    if found is not None:
        return load_arff(path, xml=found), f"labels named in {os.path.basename(found)} (beside the data)"
    ds = load_arff(path, "auto")
    return ds, f"the trailing {len(ds.label_names)} {{0,1}} attributes (no Mulan XML beside the data)"


def _standardise(Xtr, Xte):
    """Standardise with training statistics; missing values (NaN) become the mean (0).

    Mostly-zero data (at most 10% non-zeros, as bag-of-words sets) is scaled without
    centring and kept in CSR form, so that ``X W`` and ``X^T G`` stay cheap (centring
    would make every entry non-zero).
    """
    import numpy as np
    import scipy.sparse as sp

    finite = np.isfinite(Xtr)
    density = np.count_nonzero(Xtr[finite]) / max(Xtr.size, 1)
    sd = np.nanstd(Xtr, axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    if density <= 0.1 and (Xtr[finite] >= 0).all():
        return (sp.csr_matrix(np.nan_to_num(Xtr / sd)), sp.csr_matrix(np.nan_to_num(Xte / sd)),
                f"scaled to unit variance on train, not centred (sparse: {100 * density:.1f}% non-zeros)")
    mu = np.nanmean(Xtr, axis=0)
    return (np.nan_to_num((Xtr - mu) / sd), np.nan_to_num((Xte - mu) / sd),
            "standardised with the training mean and standard deviation")


def _prepare(train_path, test_path, labels, xml, unlabelled, seed):
    """Load, split, treat unlabelled rows and standardise. Returns a dict describing it all."""
    import numpy as np

    tr, how = _load(train_path, labels, xml)
    info = {"data": os.fspath(train_path), "labels_from": how, "label_names": tr.label_names}
    if test_path is None:
        test_path = _beside(train_path, "test")
        if test_path is not None:
            info["test_from"] = f"{os.path.basename(test_path)} (beside the data)"
    else:
        info["test_from"] = os.path.basename(test_path)
    if test_path is not None:
        if xml is None and labels is None and how.startswith("labels named in"):
            te = _load(test_path, None, _beside(train_path, "xml"))[0]
        else:
            te = _load(test_path, labels, xml)[0]
        if te.label_names != tr.label_names or te.feature_names != tr.feature_names:
            raise ValueError(f"{test_path}: its attributes differ from those of {train_path}")
        Xtr, Ytr, Xte, Yte = tr.X, tr.Y, te.X, te.Y
    else:
        rng = np.random.default_rng(seed)
        idx = rng.permutation(tr.X.shape[0])
        n_te = tr.X.shape[0] // 4
        Xte, Yte = tr.X[idx[:n_te]], tr.Y[idx[:n_te]]
        Xtr, Ytr = tr.X[idx[n_te:]], tr.Y[idx[n_te:]]
        info["test_from"] = f"a random 25% of {os.path.basename(os.fspath(train_path))} (seed {seed}; no test file)"
    counts = {
        "train_rows": int(Ytr.shape[0]), "train_unlabelled": int((~Ytr.any(axis=1)).sum()),
        "test_rows": int(Yte.shape[0]), "test_unlabelled": int((~Yte.any(axis=1)).sum()),
    }
    if unlabelled == "drop":
        k1, k2 = Ytr.any(axis=1), Yte.any(axis=1)
        Xtr, Ytr, Xte, Yte = Xtr[k1], Ytr[k1], Xte[k2], Yte[k2]
    counts["policy"] = unlabelled
    if not Ytr.any():
        raise ValueError(f"{train_path}: no training row has a label")
    Xtr, Xte, how_x = _standardise(Xtr, Xte)
    info.update(counts=counts, features=int(Xtr.shape[1]), standardisation=how_x)
    return Xtr, Ytr, Xte, Yte, info


def _cv_alpha_and_rule(name, X, Y, alphas, folds, seed, progress, tag):
    """Out-of-fold scores for every alpha, the rule tuned on them, and the best alpha.

    Within each fold the alphas are fitted from the largest down, each starting from the
    previous solution (warm start): the smaller alphas, which need the most L-BFGS
    iterations from scratch, start close to their optimum.
    """
    import numpy as np
    from sklearn.model_selection import KFold

    from ..apps.multilabel import pick_rule

    order = sorted(alphas, reverse=True)
    n, K = Y.shape
    Z = {a: np.empty((n, K)) for a in order}
    splitter = KFold(min(folds, n), shuffle=True, random_state=seed)
    for tr, va in splitter.split(np.zeros(n)):
        est = _new(name, alpha=order[0], warm_start=True)
        est.set_params(**{est._cv_param: est._default_rule()})
        Xf, Yf = X[tr], Y[tr]  # one object per fold: the fits along the path share its Gram matrix
        for a in order:
            est.set_params(alpha=a).fit(Xf, Yf)
            Z[a][va] = est.decision_function(X[va])
            progress.step(f"{tag}{name} alpha={a:.3g}")
    per_alpha = {}
    for a in order:
        value, score, grid, edge = pick_rule(_new(name), Z[a], Y)
        per_alpha[a] = {"cv_micro_f1": score, "rule_value": value, "rule_edge": edge}
    # Best out-of-fold micro-F1; ties go to the larger alpha (the simpler model).
    best = max(order, key=lambda a: (per_alpha[a]["cv_micro_f1"], a))
    asc = sorted(alphas)
    alpha_edge = "low" if best == asc[0] else ("high" if best == asc[-1] else None)
    return best, alpha_edge, per_alpha


def paired_bootstrap(Y, preds, n_boot=1000, seed=0, level=0.95):
    """Paired bootstrap intervals for the differences of micro- and macro-F1 between models.

    Parameters
    ----------
    Y : array_like, shape (n, K)
        True labels of the test rows.
    preds : dict of str -> array_like (n, K)
        Each model's predicted labels on the same rows.
    n_boot : int, optional
        Resamples (rows drawn with replacement, the same draw for every model).
    seed : int, optional
    level : float, optional

    Returns
    -------
    dict
        ``{"a-b": {"micro": (diff, lo, hi), "macro": (diff, lo, hi)}}`` for every ordered
        pair in the order of ``preds`` (later minus earlier), in F1 units.
    """
    import numpy as np

    from ..apps.datasets import macro_f1, micro_f1

    T = np.asarray(Y) != 0
    n = T.shape[0]
    rng = np.random.default_rng(seed)
    Wb = rng.multinomial(n, np.full(n, 1.0 / n), size=int(n_boot)).astype(np.float64)

    def boot_f1(P):
        P = np.asarray(P) != 0
        tp, fp, fn = (T & P).astype(float), (~T & P).astype(float), (T & ~P).astype(float)
        TP, FP, FN = Wb @ tp.sum(1), Wb @ fp.sum(1), Wb @ fn.sum(1)
        d = 2 * TP + FP + FN
        micro = np.where(d > 0, 2 * TP / np.where(d > 0, d, 1), 1.0)
        TPk, FPk, FNk = Wb @ tp, Wb @ fp, Wb @ fn
        dk = 2 * TPk + FPk + FNk
        macro = np.where(dk > 0, 2 * TPk / np.where(dk > 0, dk, 1), 0.0).mean(axis=1)
        return micro, macro

    b = {m: boot_f1(P) for m, P in preds.items()}
    full = {m: (micro_f1(T, P), macro_f1(T, P)) for m, P in preds.items()}
    lo_q, hi_q = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    out = {}
    names = list(preds)
    for i, a in enumerate(names):
        for bname in names[i + 1:]:
            r = {}
            for j, kind in enumerate(("micro", "macro")):
                diff = b[bname][j] - b[a][j]
                r[kind] = (full[bname][j] - full[a][j], float(np.percentile(diff, lo_q)),
                           float(np.percentile(diff, hi_q)))
            out[f"{bname}-{a}"] = r
    return out


def run_real(Xtr, Ytr, Xte, Yte, alphas, folds, seed, n_boot, progress, tag="", models=MODELS):
    """The protocol on prepared data: CV over alphas and rules, refit, test, bootstrap."""
    import numpy as np

    from ..apps.datasets import macro_f1, micro_f1

    rows, preds = {}, {}
    for name in models:
        best, alpha_edge, per_alpha = _cv_alpha_and_rule(name, Xtr, Ytr, alphas, folds, seed, progress, tag)
        cls = _classes()[name]
        rule_value = per_alpha[best]["rule_value"]
        est = _new(name, alpha=best, **{cls._cv_param: rule_value})
        t0 = time.perf_counter()
        est.fit(Xtr, Ytr)
        fit_s = time.perf_counter() - t0
        progress.step(f"{tag}{name} final fit")
        P = est.predict(Xte)
        preds[name] = P
        lab = Yte.any(axis=1)
        rows[name] = {
            "micro_f1": micro_f1(Yte, P), "macro_f1": macro_f1(Yte, P),
            "micro_f1_labelled": micro_f1(Yte[lab], P[lab]) if lab.any() else float("nan"),
            "macro_f1_labelled": macro_f1(Yte[lab], P[lab]) if lab.any() else float("nan"),
            "alpha": best, "alpha_edge": alpha_edge,
            "rule": cls._cv_param, "rule_value": rule_value, "rule_edge": per_alpha[best]["rule_edge"],
            "cv_micro_f1": per_alpha[best]["cv_micro_f1"],
            "fit_seconds": fit_s, "n_iter": est.n_iter_,
            "cv": {f"{a:.3g}": v for a, v in per_alpha.items()},
        }
    result = {"models": rows}
    if n_boot > 0:
        result["bootstrap"] = paired_bootstrap(Yte, preds, n_boot, seed)
        lab = Yte.any(axis=1)
        if not lab.all() and lab.any():
            result["bootstrap_labelled"] = paired_bootstrap(
                Yte[lab], {m: P[lab] for m, P in preds.items()}, n_boot, seed
            )
    return result


def _counts_line(c):
    pol = c["policy"]
    verb = "kept" if pol == "keep" else "dropped"
    return (f"train {c['train_rows']} rows ({c['train_unlabelled']} unlabelled, {verb}); "
            f"test {c['test_rows']} rows ({c['test_unlabelled']} unlabelled, {verb})")


def _edge_notes(rows):
    notes = []
    for name, r in rows.items():
        if r["alpha_edge"]:
            notes.append(f"{name}: alpha {r['alpha']:.3g} is the {'smallest' if r['alpha_edge'] == 'low' else 'largest'} "
                         "value of the grid; widen --alphas")
        if r["rule_edge"]:
            notes.append(f"{name}: the {r['rule']} {r['rule_value']:.3g} is an end of its data-driven grid "
                         f"({'every label' if r['rule_edge'] == 'low' else 'one label per row'})")
    return notes


def _print_real(title, info, result, out):
    c = info["counts"]
    out.write(f"{title}: {info['features']} features, {len(info['label_names'])} labels "
              f"({info['labels_from']}); test: {info['test_from']}\n")
    out.write(f"  {_counts_line(c)}; features {info['standardisation']}\n")
    rows = result["models"]
    out.write(f"  {'model':<10} {'micro-F1':>8} {'macro-F1':>8} {'alpha':>8} {'rule':>16} "
              f"{'CV micro':>8} {'fit s':>6} {'iters':>5}\n")
    for name, r in rows.items():
        rule = f"{r['rule']}={r['rule_value']:.3g}"
        out.write(f"  {name:<10} {100 * r['micro_f1']:8.2f} {100 * r['macro_f1']:8.2f} {r['alpha']:8.2g} "
                  f"{rule:>16} {100 * r['cv_micro_f1']:8.2f} {r['fit_seconds']:6.2f} {r['n_iter']:5d}\n")
    if c["policy"] == "keep" and c["test_unlabelled"]:
        n_lab = c["test_rows"] - c["test_unlabelled"]
        out.write(f"  on the {n_lab} labelled test rows only (same models): "
                  + "; ".join(f"{m} {100 * r['micro_f1_labelled']:.2f} / {100 * r['macro_f1_labelled']:.2f}"
                              for m, r in rows.items()) + "\n")
    for key, what in (("bootstrap", "all test rows"), ("bootstrap_labelled", "labelled test rows")):
        if key in result:
            out.write(f"  paired bootstrap, 95% interval of the difference ({what}), F1 points:\n")
            for pair, r in result[key].items():
                out.write(f"    {pair:<20} micro {_fmt_diff(r['micro'])}   macro {_fmt_diff(r['macro'])}\n")
    for note in _edge_notes(rows):
        out.write(f"  note: {note}\n")


def _fmt_diff(t):
    d, lo, hi = t
    return f"{100 * d:+6.2f} [{100 * lo:+6.2f}, {100 * hi:+6.2f}]"


def _paper_files(name, data_dir):
    """(train, test, xml) paths of a set: from --data-dir, else the fetcher's cache."""
    if data_dir is not None:
        tr = os.path.join(data_dir, f"{name}-train.arff")
        te = os.path.join(data_dir, f"{name}-test.arff")
        xml = os.path.join(data_dir, f"{name}.xml")
        for p in (tr, te):
            if not os.path.exists(p):
                raise OSError(f"{p} does not exist (--data-dir must hold NAME-train.arff and NAME-test.arff)")
        return tr, te, xml if os.path.exists(xml) else None
    from ..apps.datasets import fetch_mulan

    try:
        files = fetch_mulan(name).files
    except OSError as e:
        raise OSError(f"{e} With the files at hand: --data-dir DIR.") from None
    return files[f"{name}-train.arff"], files[f"{name}-test.arff"], files[f"{name}.xml"]


def _print_paper_table(results, out, models=MODELS):
    out.write("\nmicro-F1 / macro-F1 (%), ours on the Mulan test splits beside the paper's Table 2\n")
    hdr = "  " + f"{'set':<10}" + "".join(f"{m + ' ours':>17}{m + ' paper':>17}" for m in models)
    out.write(hdr + "\n")
    for name, (info, res) in results.items():
        line = f"  {name:<10}"
        for m in models:
            r = res["models"][m]
            ours = f"{100 * r['micro_f1']:.2f} / {100 * r['macro_f1']:.2f}"
            p = PAPER_TABLE2.get(name, {}).get(m)
            paper = f"{p[0]:.2f} / {p[1]:.2f}" if p else "-"
            line += f"{ours:>17}{paper:>17}"
        out.write(line + "\n")
        c = info["counts"]
        if c["test_unlabelled"] and c["policy"] == "keep":
            line = f"  {'  labelled':<10}"
            for m in models:
                r = res["models"][m]
                line += f"{100 * r['micro_f1_labelled']:.2f} / {100 * r['macro_f1_labelled']:.2f}".rjust(17) + " " * 17
            out.write(line + f"   (the {c['test_rows'] - c['test_unlabelled']} test rows with a label)\n")
    out.write(f"  {PAPER_NOTE}\n")
    extra = [m for m in models if m not in MODELS]  # not in the paper: compared with sparsemax too
    pairs = [("sparsemax", "softmax")] + [(m, other) for m in extra for other in ("sparsemax", "softmax")]
    for a, b in pairs:
        out.write(f"  {a} - {b}, paired bootstrap 95% interval (F1 points):\n")
        for name, (info, res) in results.items():
            if "bootstrap" in res:
                r = res["bootstrap"][f"{a}-{b}"]
                out.write(f"    {name:<10} micro {_fmt_diff(r['micro'])}   macro {_fmt_diff(r['macro'])}\n")


def _main_real(args, alphas, show, report):
    sets = [s.strip() for s in args.sets.split(",") if s.strip()] if args.paper else [None]
    jobs = []
    for name in sets:
        if name is None:
            jobs.append((os.path.basename(args.data), args.data, args.test, args.labels, args.xml))
        else:
            tr, te, xml = _paper_files(name, args.data_dir)
            jobs.append((name, tr, te, None, xml))
    prepared = [(title, *_prepare(tr, te, lab, xml, args.unlabelled, args.seed))
                for title, tr, te, lab, xml in jobs]
    folds = args.cv
    models = _models(args.loss)
    prog = _Progress(len(prepared) * len(models) * (folds * len(alphas) + 1), show)
    results = {}
    for title, Xtr, Ytr, Xte, Yte, info in prepared:
        res = run_real(Xtr, Ytr, Xte, Yte, alphas, folds, args.seed, args.bootstrap, prog, f"{title} ",
                       models=models)
        results[title] = (info, res)
    prog.close()
    for title, (info, res) in results.items():
        _print_real(title, info, res, sys.stdout)
        print()
    if args.paper:
        _print_paper_table(results, sys.stdout, models)
        if args.unlabelled == "drop" and any(i["counts"]["test_unlabelled"] for i, _ in results.values()):
            print("  rows with no label were dropped from training and test (--unlabelled drop, "
                  "the default with --paper); --unlabelled keep evaluates on every test row")
    print(f"alpha: {folds}-fold CV on the training set over {len(alphas)} values "
          f"({min(alphas):.3g} .. {max(alphas):.3g}), the same grid and folds for every model; "
          "label rule tuned on the same out-of-fold scores; micro-F1 of the out-of-fold "
          "predictions decides (CV micro)")
    report["results"] = {t: {"info": i, **r} for t, (i, r) in results.items()}


# --------------------------------------------------------------------------- synthetic
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


def _run(train, dev, test, alphas, cv, seed, progress, tag="", models=MODELS):
    """Synthetic data: pick alpha on dev per metric kind, refit with the rule tuned by CV, test.

    Every alpha is fitted once on train with a fixed label rule. The label-set metrics (F1)
    use the alpha whose dev micro F1 is best when the rule (threshold or scale) is also
    picked on dev; the model is then refitted at that alpha with the rule tuned by
    cross-validation on train (as the paper), and tested. The proportion metrics (MSE,
    JSD), which no label rule affects, use the alpha with the lowest dev JSD. The same
    procedure serves every model.
    """
    import warnings

    from ..apps.datasets import js_divergence
    from ..apps.multilabel import TuningEdgeWarning, pick_rule

    rows = {}
    for name in models:
        fitted = []
        for a in alphas:
            est = _estimator(name, a, cv, seed)
            est.set_params(**{est._cv_param: est._default_rule()}).fit(train[0], train[1])
            Z = est.decision_function(dev[0])
            f1 = pick_rule(est, Z, dev[1])[1]
            jsd = js_divergence(dev[2], est.predict_proba(dev[0]))
            fitted.append((a, est, f1, jsd))
            progress.step(f"{tag}{name} alpha={a:g}")
        a_f1 = max(fitted, key=lambda r: r[2])[0]
        a_js, est_js, _, _ = min(fitted, key=lambda r: r[3])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TuningEdgeWarning)  # reported in the table
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
            "rule_edge": est_f1.rule_at_edge_,
            "dev": {f"{a:g}": {"micro_f1_best_rule": f, "jsd": j} for a, _, f, j in fitted},
        }
    return rows


def _table(rows, out):
    out.write(f"  {'model':<10} {'micro-F1':>9} {'macro-F1':>9} {'MSE':>8} {'JSD':>8}   tuned\n")
    for name, r in rows.items():
        edge = f" (an end of its grid: {r['rule_edge']})" if r.get("rule_edge") else ""
        out.write(
            f"  {name:<10} {r['micro_f1']:9.4f} {r['macro_f1']:9.4f} {r['mse']:8.4f} {r['jsd']:8.4f}"
            f"   F1: alpha={r['alpha_f1']:g} {r['rule']}={r['rule_value']:.3g}{edge};"
            f" proportions: alpha={r['alpha_proportions']:g}\n"
        )


def _synthetic_splits(K, L, seed):
    import scipy.sparse as sp

    from ..apps.datasets import make_synthetic

    d = make_synthetic(K, L, seed=seed)
    # Bag-of-words rows are sparse: CSR makes X W and X^T G cheap.
    return [(sp.csr_matrix(s.X), s.Y, s.Q) for s in (d["train"], d["dev"], d["test"])]


def _main_synthetic(args, alphas, show, report):
    K = args.labels or 10
    lengths = [args.length]
    if args.sweep_lengths:
        lengths = [float(x) for x in args.sweep_lengths.split(",") if x.strip()]
    report.update(labels=K, n_train=1200, n_dev=200, n_test=1000)
    models = _models(args.loss)
    prog = _Progress(len(lengths) * len(models) * (len(alphas) + 1), show)
    results = {}
    for L in lengths:
        splits = _synthetic_splits(K, L, args.seed)
        results[L] = _run(*splits, alphas, args.cv, args.seed, prog, f"L={L:g} ", models=models)
    prog.close()
    for L, rows in results.items():
        print(f"synthetic documents: K = {K} labels, mean length L = {L:g} "
              "(1200 train / 200 dev / 1000 test)")
        _table(rows, sys.stdout)
        print()
    if len(lengths) > 1:
        print("Jensen-Shannon divergence of the proportions against document length L")
        print(f"  {'L':>6} " + " ".join(f"{m:>10}" for m in models) + "   sparsemax < softmax")
        for L, rows in results.items():
            print(f"  {L:6g} " + " ".join(f"{rows[m]['jsd']:10.4f}" for m in models)
                  + f"   {'yes' if rows['sparsemax']['jsd'] < rows['softmax']['jsd'] else 'no'}")
        print()
    report["results"] = {f"{L:g}": rows for L, rows in results.items()}
    lo, hi = min(alphas), max(alphas)
    for L, rows in results.items():
        for name, r in rows.items():
            for key, what in (("alpha_f1", "F1"), ("alpha_proportions", "proportions")):
                if len(alphas) > 1 and r[key] in (lo, hi):
                    print(f"note: L={L:g} {name}: the {what} alpha {r[key]:g} is the "
                          f"{'smallest' if r[key] == lo else 'largest'} of --alphas; widen the grid")
    print("micro/macro F1 of the predicted label sets (alpha tuned on dev micro F1); MSE (sum over"
          " labels, mean over documents) and JSD (nats) of the predicted proportions (alpha tuned"
          " on dev JSD)")


def main(args):
    import json

    try:
        import scipy  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError:
        print(ML_EXTRA, file=sys.stderr)
        return 2
    real = args.paper or args.data != "synthetic"
    if args.alphas is None:
        alphas = list(DEFAULT_ALPHAS_REAL if real else DEFAULT_ALPHAS_SYNTHETIC)
    else:
        try:
            alphas = [float(a) for a in args.alphas.split(",") if a.strip()]
        except ValueError:
            print(f"error: --alphas must be comma-separated numbers; got {args.alphas!r}", file=sys.stderr)
            return 2
        if not alphas or not all(a >= 0 and a < float("inf") for a in alphas):
            print("error: --alphas must hold at least one finite number >= 0", file=sys.stderr)
            return 2
    if args.cv is None:
        args.cv = 5 if real else 3
    if args.cv < 2:
        print("error: --cv must be at least 2", file=sys.stderr)
        return 2
    if args.unlabelled is None:
        args.unlabelled = "drop" if args.paper else "keep"
    report = {"data": "paper" if args.paper else args.data, "seed": args.seed, "alphas": alphas,
              "cv": args.cv, "unlabelled": args.unlabelled, "loss": args.loss}
    show = not args.no_progress
    t0 = time.perf_counter()
    if real:
        try:
            _main_real(args, alphas, show, report)
        except (OSError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    else:
        _main_synthetic(args, alphas, show, report)
    print(f"{time.perf_counter() - t0:.1f}s in all")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2, default=_json_default)
    return 0


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")
