"""Linear multi-label classifiers: gradients, targets, label rules, scikit-learn checks."""

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("scipy")

import scipy.sparse as sp  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import sparsemax_nb as sm  # noqa: E402
from sparsemax_nb.apps.datasets import js_divergence, make_synthetic, micro_f1  # noqa: E402
from sparsemax_nb.apps.multilabel import (  # noqa: E402
    LogisticClassifier,
    SoftmaxClassifier,
    SparsemaxClassifier,
    TuningEdgeWarning,
    pick_rule,
    rule_grid,
)

ALL = (SparsemaxClassifier, SoftmaxClassifier, LogisticClassifier)

# Checks that assume a one-vs-rest multi-label model (label j predicted iff
# decision_function[:, j] > 0, predict_proba[:, j] a per-label marginal in (0, 1) whose
# rounding is the prediction). These models predict a label *set* jointly: sparsemax's
# support of sparsemax(t z), or probabilities above a threshold tuned by cross-validation,
# and predict_proba gives proportions (a distribution over labels, with exact 0 and 1 for
# sparsemax). So the checks do not apply.
_ONE_VS_REST = (
    "decision_function > 0 and predict_proba.round() define the labels only for "
    "one-vs-rest models; the label set here is a joint rule tuned by CV"
)
_PROBA_OPEN = "sparsemax proportions have exact 0 and 1, outside the open interval (0, 1)"


def _expected_failures(est):
    fails = {"check_classifier_multioutput": _ONE_VS_REST}
    if isinstance(est, SparsemaxClassifier):
        fails["check_classifiers_multilabel_output_format_predict_proba"] = _PROBA_OPEN
    return fails


@parametrize_with_checks([SparsemaxClassifier(), SoftmaxClassifier(), LogisticClassifier()],
                         expected_failed_checks=_expected_failures)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def _toy(seed=0, n=60, d=5, K=4):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    Y = (rng.random((n, K)) < 0.35).astype(int)
    Y[np.arange(n), rng.integers(0, K, n)] = 1
    return X, Y


@pytest.mark.parametrize("cls", ALL)
def test_objective_gradient_finite_differences(cls):
    X, Y = _toy()
    Y[3] = 0  # an unlabelled row (skipped by sparsemax / softmax, used by logistic)
    est = cls(alpha=0.1)
    Q, Ybin = est._encode_targets(Y)
    f = est._objective(X, Q, Ybin)
    rng = np.random.default_rng(1)
    w = rng.normal(size=X.shape[1] * Y.shape[1] + Y.shape[1])
    val, g = f(w)
    eps = 1e-6
    num = np.array([(f(w + eps * e)[0] - f(w - eps * e)[0]) / (2 * eps) for e in np.eye(w.size)])
    np.testing.assert_allclose(g, num, atol=1e-6)


def test_sparsemax_objective_matches_library_loss():
    X, Y = _toy()
    est = SparsemaxClassifier(alpha=0.0, fit_intercept=False)
    Q, Ybin = est._encode_targets(Y)
    W = np.random.default_rng(2).normal(size=(5, 4))
    val, _ = est._objective(X, Q, Ybin)(W.ravel())
    assert val == pytest.approx(float(sm.sparsemax_loss(X @ W, Q, reduction="mean")))


def test_predict_is_support_and_proba_is_sparsemax():
    X, Y = _toy()
    est = SparsemaxClassifier(alpha=1e-2, scale=1.7).fit(X, Y)
    Z = est.decision_function(X)
    np.testing.assert_array_equal(est.predict(X), (sm.sparsemax(1.7 * Z) > 0).astype(int))
    np.testing.assert_allclose(est.predict_proba(X), sm.sparsemax(Z))
    assert est.scale_ == 1.7 and est.predict(X).dtype.kind == "i"
    assert est.coef_.shape == (4, 5) and est.intercept_.shape == (4,)


@pytest.mark.parametrize("cls", ALL)
def test_sparse_input_and_proportion_targets(cls):
    X, Y = _toy()
    a = cls(alpha=1e-2, cv=2).fit(X, Y)
    b = cls(alpha=1e-2, cv=2).fit(sp.csr_matrix(X), Y)
    np.testing.assert_allclose(a.coef_, b.coef_, atol=1e-6)
    np.testing.assert_array_equal(a.predict(X), b.predict(sp.csr_matrix(X)))
    if cls is not LogisticClassifier:
        # 0/1 labels and their proportions are the same target
        c = cls(alpha=1e-2, cv=2).fit(X, sm.labels_to_proportions(Y))
        np.testing.assert_allclose(a.coef_, c.coef_, atol=1e-6)


def test_multiclass_labels():
    rng = np.random.default_rng(3)
    centers = np.array([[3, 0], [0, 3], [-3, -3]])
    y = rng.integers(0, 3, 150)
    X = centers[y] + rng.normal(size=(150, 2))
    names = np.array(["a", "b", "c"])[y]
    est = SparsemaxClassifier(alpha=1e-3).fit(X, names)
    assert set(est.predict(X)) <= {"a", "b", "c"}
    assert est.score(X, names) > 0.9
    P = est.predict_proba(X)
    np.testing.assert_allclose(P.sum(1), 1)
    assert (P == 0).any()


def test_bad_targets():
    X, Y = _toy()
    with pytest.raises(ValueError, match="0/1 label matrix or proportions"):
        SparsemaxClassifier().fit(X, Y * 0.7)
    with pytest.raises(ValueError, match="every row of y is empty"):
        SparsemaxClassifier().fit(X, np.zeros_like(Y))
    with pytest.raises(ValueError, match="scale"):
        SparsemaxClassifier(scale=-1).fit(X, Y)
    with pytest.raises(ValueError, match="threshold"):
        SoftmaxClassifier(threshold="auto").fit(X, Y)
    with pytest.raises(ValueError, match="alpha"):
        LogisticClassifier(alpha=-1).fit(X, Y)


def test_cv_tunes_the_rule_and_models_learn():
    d = make_synthetic(5, 60, n_train=300, n_dev=10, n_test=200, vocab_size=100, seed=0)
    tr, te = d["train"], d["test"]
    for cls in ALL:
        est = cls(alpha=1e-3, cv=3).fit(tr.X, tr.Y)
        rule = getattr(est, est._cv_param + "_")
        assert float(rule) in est.rule_grid_ and est.rule_at_edge_ is None
        assert micro_f1(te.Y, est.predict(te.X)) > 0.75
        P = est.predict_proba(te.X)
        np.testing.assert_allclose(P.sum(1), 1, atol=1e-12)
        assert js_divergence(te.Q, P) < 0.2


def test_sparsemax_critical_scales_match_the_support():
    # Between consecutive critical scales the support of sparsemax(t z) is constant, and its
    # size is 1 + the number of critical scales above t.
    rng = np.random.default_rng(4)
    Z = rng.normal(size=(50, 7)) * rng.uniform(0.1, 10, size=(50, 1))
    Zs = -np.sort(-Z, axis=1)
    k = np.arange(1, 7)
    crit = 1.0 / (np.cumsum(Zs, axis=1)[:, :-1] - k * Zs[:, 1:])
    est = SparsemaxClassifier()
    for t in est._rule_grid(Z):
        size = (sm.sparsemax(t * Z) > 0).sum(axis=1)
        np.testing.assert_array_equal(size, 1 + (crit > t).sum(axis=1))


@pytest.mark.parametrize("cls", ALL)
def test_rule_grid_runs_from_every_label_to_one_label(cls):
    rng = np.random.default_rng(5)
    Z = rng.normal(size=(200, 9)) * 3
    grid = cls()._rule_grid(Z)
    assert np.all(np.diff(grid) > 0) and len(grid) > 20
    lo = cls()._labels_from_scores(Z, grid[0])
    hi = cls()._labels_from_scores(Z, grid[-1])
    assert lo.all()
    assert (hi.sum(axis=1) == 1).all()
    if cls is not SparsemaxClassifier:
        assert grid[-1] < 1


def test_rule_grid_ignores_unusable_values():
    assert rule_grid([np.inf, 0.0, -1.0, np.nan]).size == 0
    g = rule_grid([0.5])
    assert g.size == 2 and g[0] < 0.5 < g[1]


def test_softmax_threshold_reaches_far_below_one_over_k():
    # 60 labels, about 25 per row: the best probability threshold is near 1/60 or lower,
    # far under the old grid's floor of 0.02.
    rng = np.random.default_rng(6)
    n, d, K = 400, 20, 60
    X = rng.normal(size=(n, d))
    Y = (X @ rng.normal(size=(d, K)) + 0.1 * rng.normal(size=(n, K)) > 0.3).astype(int)
    Y[np.arange(n), rng.integers(0, K, n)] = 1
    est = SoftmaxClassifier(alpha=1e-3, cv=3).fit(X[:300], Y[:300])
    assert est.threshold_ < 0.02
    assert micro_f1(Y[300:], est.predict(X[300:])) > 0.6


@pytest.mark.parametrize("cls", ALL)
def test_edge_of_the_rule_grid_is_reported(cls):
    # Every row carries every label: the best rule predicts every label, the low end.
    X, _ = _toy()
    Y = np.ones((X.shape[0], 4), dtype=int)
    Y[0, 0] = 0  # not constant, so the logistic model still has something to fit
    with pytest.warns(TuningEdgeWarning, match="lowest candidate"):
        est = cls(alpha=1e-2, cv=2).fit(X, Y)
    assert est.rule_at_edge_ == "low"


def test_pick_rule_prefers_macro_f1_on_ties_and_reports_edges():
    est = SoftmaxClassifier()
    Z = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]]))
    Y = np.array([[1, 1, 0], [0, 1, 1]])
    value, score, grid, edge = pick_rule(est, Z, Y)
    assert score == 1.0 and edge is None
    np.testing.assert_array_equal(est._labels_from_scores(Z, value), Y.astype(bool))


@pytest.mark.parametrize("cls", ALL)
def test_intercept_start_is_optimal_with_zero_weights(cls):
    X, Y = _toy()
    Y[5] = 0
    est = cls(alpha=0.1)
    Q, Ybin = est._encode_targets(Y)
    w0 = est._initial_weights(X.shape[1], Q, Ybin)
    assert not w0[: X.shape[1] * 4].any()
    _, g = est._objective(X, Q, Ybin)(w0)
    np.testing.assert_allclose(g[X.shape[1] * 4:], 0, atol=1e-6 if cls is not LogisticClassifier else 1e-5)


@pytest.mark.parametrize("cls", ALL)
def test_warm_start_reaches_the_same_solution(cls):
    X, Y = _toy(n=120)
    rule = {cls._cv_param: 1.0 if cls is SparsemaxClassifier else 0.5}
    cold = cls(alpha=1e-3, tol=1e-8, **rule).fit(X, Y)
    warm = cls(alpha=1e-1, tol=1e-8, warm_start=True, **rule).fit(X, Y)
    warm.set_params(alpha=1e-3).fit(X, Y)
    np.testing.assert_allclose(warm.coef_, cold.coef_, atol=1e-4)
    np.testing.assert_allclose(warm.intercept_, cold.intercept_, atol=1e-4)


def test_fit_restores_numba_threads():
    import numba

    before = numba.get_num_threads()
    X, Y = _toy()
    SparsemaxClassifier(alpha=1e-2, scale=1.0).fit(X, Y)
    assert numba.get_num_threads() == before
    with pytest.raises(ValueError):
        SparsemaxClassifier(scale=1.0).fit(X, np.zeros_like(Y))
    assert numba.get_num_threads() == before


# --------------------------------------------------------------------------- the command
TOY = __import__("pathlib").Path(__file__).parent / "data" / "mulan_toy"


def _cli(argv, capsys):
    from sparsemax_nb import cli

    rc = cli.main(["multilabel", "--no-progress", *argv])
    return rc, capsys.readouterr()


def test_cli_finds_labels_test_split_and_counts(tmp_path, capsys):
    import json

    out = tmp_path / "res.json"
    rc, text = _cli(["--data", str(TOY / "toy-train.arff"), "--alphas", "1e-3,1e-1,10", "--cv", "2",
                     "--bootstrap", "200", "--json", str(out)], capsys)
    assert rc == 0, text.err
    assert "labels named in toy.xml (beside the data)" in text.out
    assert "test: toy-test.arff (beside the data)" in text.out
    assert "train 80 rows (4 unlabelled, kept); test 50 rows (5 unlabelled, kept)" in text.out
    assert "on the 45 labelled test rows only" in text.out
    assert "sparsemax-softmax" in text.out
    res = json.loads(out.read_text())["results"]["toy-train.arff"]
    assert res["info"]["label_names"] == ["label a", "label_b", "label_c"]
    for r in res["models"].values():
        assert 0.5 < r["micro_f1"] <= 1 and r["alpha"] in (1e-3, 1e-1, 10)
        assert r["cv_micro_f1"] == max(v["cv_micro_f1"] for v in r["cv"].values())
    d, lo, hi = res["bootstrap"]["sparsemax-softmax"]["micro"]
    assert lo <= d <= hi


def test_cli_unlabelled_drop_and_trailing_labels(tmp_path, capsys):
    import shutil

    for f in ("toy-train.arff", "toy-test.arff"):  # no XML beside: the trailing {0,1} attributes
        shutil.copy(TOY / f, tmp_path / f)
    rc, text = _cli(["--data", str(tmp_path / "toy-train.arff"), "--alphas", "1e-2", "--cv", "2",
                     "--bootstrap", "0", "--unlabelled", "drop"], capsys)
    assert rc == 0, text.err
    assert "the trailing 3 {0,1} attributes" in text.out
    assert "train 80 rows (4 unlabelled, dropped); test 50 rows (5 unlabelled, dropped)" in text.out
    assert "labelled test rows only" not in text.out
    # a single alpha is both ends of its grid: said in the table
    assert "alpha 0.01 is the smallest value of the grid" in text.out


def test_cli_errors_are_one_line(tmp_path, capsys):
    f = tmp_path / "bad.arff"
    f.write_text("@relation r\n@attribute a numeric\n")
    rc, text = _cli(["--data", str(f)], capsys)
    assert rc == 2 and text.err.startswith("error:") and "no @data" in text.err
    rc, text = _cli(["--data", str(TOY / "toy-train.arff"), "--alphas", "x"], capsys)
    assert rc == 2 and "--alphas" in text.err
    rc, text = _cli(["--paper", "--data-dir", str(tmp_path), "--sets", "scene"], capsys)
    assert rc == 2 and "scene-train.arff does not exist" in text.err


def test_cli_paper_mode_on_a_data_dir(capsys):
    rc, text = _cli(["--paper", "--data-dir", str(TOY), "--sets", "toy", "--alphas", "1e-2,1",
                     "--cv", "2", "--bootstrap", "100"], capsys)
    assert rc == 0, text.err
    assert "beside the paper's Table 2" in text.out and "UNVERIFIED" in text.out
    assert "toy" in text.out.split("beside the paper's Table 2")[1]
    # --paper drops rows with no label by default, and says so
    assert "train 80 rows (4 unlabelled, dropped); test 50 rows (5 unlabelled, dropped)" in text.out
    assert "were dropped from training and test" in text.out


def test_cli_without_the_ml_extra(monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn raises ImportError
    rc, text = _cli(["--data", str(TOY / "toy-train.arff")], capsys)
    assert rc == 2
    lines = text.err.strip().splitlines()
    assert len(lines) == 1 and 'pip install "sparsemax_nb[ml]"' in lines[0]


def test_paired_bootstrap_matches_resampling_by_hand():
    from sparsemax_nb.cli.multilabel import paired_bootstrap
    from sparsemax_nb.apps.datasets import macro_f1

    rng = np.random.default_rng(8)
    Y = (rng.random((40, 4)) < 0.4).astype(int)
    A = (rng.random((40, 4)) < 0.4).astype(int)
    B = np.where(rng.random((40, 4)) < 0.8, Y, 1 - Y)
    r = paired_bootstrap(Y, {"a": A, "b": B}, n_boot=300, seed=3)["b-a"]
    # the same draws, by hand
    W = np.random.default_rng(3).multinomial(40, np.full(40, 1 / 40), size=300)
    diffs = {"micro": [], "macro": []}
    for w in W:
        idx = np.repeat(np.arange(40), w)
        diffs["micro"].append(micro_f1(Y[idx], B[idx]) - micro_f1(Y[idx], A[idx]))
        diffs["macro"].append(macro_f1(Y[idx], B[idx]) - macro_f1(Y[idx], A[idx]))
    for kind in ("micro", "macro"):
        d, lo, hi = r[kind]
        assert lo == pytest.approx(np.percentile(diffs[kind], 2.5))
        assert hi == pytest.approx(np.percentile(diffs[kind], 97.5))
    same = paired_bootstrap(Y, {"a": A, "b": A.copy()}, n_boot=50)["b-a"]
    assert same["micro"] == (0.0, 0.0, 0.0) and same["macro"] == (0.0, 0.0, 0.0)


# The Mulan files beside the repository (<repo>/../shared), if any; the tests that need them
# skip otherwise. SPARSEMAX_NB_SHARED_DIR points elsewhere (e.g. from a separate worktree).
SHARED = __import__("pathlib").Path(
    __import__("os").environ.get("SPARSEMAX_NB_SHARED_DIR")
    or __import__("pathlib").Path(__file__).resolve().parents[1].parent / "shared"
) / "data" / "mulan"


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "emotions-train.arff").exists(), reason="no <repo>/../shared/data/mulan")
def test_cli_on_emotions(capsys):
    import json
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        out = f"{d}/r.json"
        rc, text = _cli(["--data", str(SHARED / "emotions-train.arff"), "--alphas", "1e-2,1e-1,1",
                         "--cv", "3", "--bootstrap", "200", "--json", out], capsys)
        assert rc == 0, text.err
        res = json.load(open(out))["results"]["emotions-train.arff"]
    assert res["info"]["counts"]["test_rows"] == 202
    for r in res["models"].values():
        assert 0.55 < r["micro_f1"] < 0.8


def test_cli_keeps_mostly_zero_data_sparse(tmp_path, capsys):
    # Bag-of-words-like features (5% non-zeros) in ARFF's sparse row format: scaled without
    # centring and kept in CSR form; the fitted models still learn the labels.
    import scipy.sparse as sps

    from sparsemax_nb.cli.multilabel import _standardise

    rng = np.random.default_rng(9)
    n, d, K = 150, 40, 3
    X = sps.random(n, d, density=0.05, random_state=1, data_rvs=lambda k: rng.integers(1, 4, k)).toarray()
    W = rng.normal(size=(d, K)) * 3
    Z = X @ W
    Y = (Z > 1).astype(int)
    Y[np.arange(n), np.argmax(Z, axis=1)] = 1
    lines = ["@relation bow", *[f"@attribute w{j} numeric" for j in range(d)],
             *[f"@attribute y{j} {{0,1}}" for j in range(K)], "@data"]
    for i in range(n):
        row = np.concatenate([X[i], Y[i]])
        lines.append("{" + ",".join(f"{j} {row[j]:g}" for j in np.flatnonzero(row)) + "}")
    f = tmp_path / "bow.arff"
    f.write_text("\n".join(lines) + "\n")
    rc, text = _cli(["--data", str(f), "--alphas", "1e-3,1e-2", "--cv", "2", "--bootstrap", "0"], capsys)
    assert rc == 0, text.err
    assert "not centred (sparse" in text.out and "random 25%" in text.out
    A, B, how = _standardise(X[:100], X[100:])
    assert sps.issparse(A) and sps.issparse(B) and "not centred" in how
    sd = X[:100].std(0)
    np.testing.assert_allclose(A.toarray(), X[:100] / np.where(sd > 0, sd, 1))
    A, B, how = _standardise(X[:100] + 1.0, X[100:] + 1.0)  # dense data: centred
    assert not sps.issparse(A) and "mean" in how
    np.testing.assert_allclose(A.mean(0), 0, atol=1e-12)


def test_cli_without_the_ml_extra_in_a_fresh_process():
    # A plain install, as far as imports go: scikit-learn and scipy cannot be imported.
    import subprocess
    import sys

    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('sklearn', 'scipy'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from sparsemax_nb import cli\n"
        f"sys.exit(cli.main(['multilabel', '--data', {str(TOY / 'toy-train.arff')!r}]))\n"
    )
    root = str(__import__("pathlib").Path(__file__).resolve().parents[1])
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=300)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        'error: sparsemax-nb multilabel needs scikit-learn and scipy: pip install "sparsemax_nb[ml]"'
    ]
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("sparse", [False, True])
def test_whitened_fit_reaches_the_plain_optimum(cls, sparse, monkeypatch):
    import sparsemax_nb.apps.multilabel as ML

    rng = np.random.default_rng(10)
    X, Y = _toy(n=150, d=6)
    X = X @ rng.normal(size=(6, 6))  # correlated features: what the whitening is for
    X[:, 5] = X[:, 4]  # and a collinear pair (a zero eigenvalue)
    Xs = sp.csr_matrix(X) if sparse else X
    rule = {cls._cv_param: 1.0 if cls is SparsemaxClassifier else 0.5}
    for alpha in (1e-2, 0.0):
        a = cls(alpha=alpha, tol=1e-9, max_iter=5000, **rule).fit(Xs, Y)
        monkeypatch.setattr(ML, "_PRECONDITION_MAX_FEATURES", 0)  # plain L-BFGS
        b = cls(alpha=alpha, tol=1e-9, max_iter=5000, **rule).fit(Xs, Y)
        monkeypatch.undo()
        est = cls(alpha=alpha)
        Q, Ybin = est._encode_targets(Y)
        f = est._objective(X, Q, Ybin)
        fa = f(np.concatenate([a.coef_.T.ravel(), a.intercept_]))[0]
        fb = f(np.concatenate([b.coef_.T.ravel(), b.intercept_]))[0]
        assert np.isfinite(a.coef_).all()
        assert fa <= fb + 1e-9
        if alpha > 0:  # a unique optimum
            np.testing.assert_allclose(a.coef_, b.coef_, atol=1e-4)


def test_warm_start_reuses_the_gram_matrix():
    X, Y = _toy(n=100)
    est = SoftmaxClassifier(alpha=1.0, threshold=0.5, warm_start=True).fit(X, Y)
    cache = est._gram_cache
    assert cache[0] is X
    est.set_params(alpha=0.1).fit(X, Y)
    assert est._gram_cache is cache  # same X object: not decomposed again
    assert not hasattr(SoftmaxClassifier(alpha=1.0, threshold=0.5).fit(X, Y), "_gram_cache")


def test_cli_synthetic_notes_alpha_at_an_edge(capsys, monkeypatch):
    import sparsemax_nb.cli.multilabel as C
    from sparsemax_nb.apps import datasets

    original = datasets.make_synthetic
    small = lambda K, L, seed=None: original(  # noqa: E731
        K, L, n_train=150, n_dev=60, n_test=80, vocab_size=60, seed=seed)
    monkeypatch.setattr(datasets, "make_synthetic", small)
    rc, text = _cli(["--labels", "4", "--length", "30", "--alphas", "10,100"], capsys)
    assert rc == 0, text.err
    assert "synthetic documents: K = 4 labels" in text.out
    assert "is the smallest of --alphas; widen the grid" in text.out  # heavy L2: 10 wins
    assert C.DEFAULT_ALPHAS_SYNTHETIC[0] == 1e-6


def test_cli_paper_offline_is_one_line(tmp_path, monkeypatch, capsys):
    import socket

    from sparsemax_nb.apps import datasets

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there: as good as offline
    monkeypatch.setattr(datasets, "MULAN_URLS", (f"http://127.0.0.1:{port}/{{file}}",))
    monkeypatch.setenv("SPARSEMAX_NB_DATA", str(tmp_path))
    rc, text = _cli(["--paper", "--sets", "emotions"], capsys)
    assert rc == 2
    lines = text.err.strip().splitlines()
    assert len(lines) == 1 and "could not download emotions-train.arff" in lines[0]
    assert "--data-dir" in lines[0]
    assert list((tmp_path / "mulan" / "emotions").iterdir()) == []
