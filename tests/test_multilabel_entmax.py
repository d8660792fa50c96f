"""The multi-label classifier trained with the 1.5-entmax loss (``loss="entmax15"``)."""

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("scipy")

import scipy.sparse as sp  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import sparsemax_nb as sm  # noqa: E402
import naive  # noqa: E402
from sparsemax_nb.apps.datasets import js_divergence, load_arff, make_synthetic, micro_f1  # noqa: E402
from sparsemax_nb.apps.multilabel import LOSSES, SparsemaxClassifier  # noqa: E402

TOY = __import__("pathlib").Path(__file__).parent / "data" / "mulan_toy"
_PROBA_OPEN = "1.5-entmax proportions have exact 0 and 1, outside the open interval (0, 1)"
_ONE_VS_REST = (
    "decision_function > 0 and predict_proba.round() define the labels only for "
    "one-vs-rest models; the label set here is the support of entmax15(t z), tuned by CV"
)


@parametrize_with_checks(
    [SparsemaxClassifier(loss="entmax15")],
    expected_failed_checks=lambda est: {
        "check_classifier_multioutput": _ONE_VS_REST,
        "check_classifiers_multilabel_output_format_predict_proba": _PROBA_OPEN,
    },
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def _toy(seed=0, n=60, d=5, K=4):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    Y = (rng.random((n, K)) < 0.35).astype(int)
    Y[np.arange(n), rng.integers(0, K, n)] = 1
    return X, Y


def _fd(f, w, eps=1e-6):
    return np.array([(f(w + eps * e)[0] - f(w - eps * e)[0]) / (2 * eps) for e in np.eye(w.size)])


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_objective_gradient_finite_differences(fit_intercept):
    X, Y = _toy()
    Y[3] = 0  # an unlabelled row: skipped by the loss
    est = SparsemaxClassifier(alpha=0.3, loss="entmax15", fit_intercept=fit_intercept)
    Q, Ybin = est._encode_targets(Y)
    f = est._objective(X, Q, Ybin)
    K = Y.shape[1]
    rng = np.random.default_rng(1)
    w = rng.normal(size=X.shape[1] * K + (K if fit_intercept else 0))
    val, g = f(w)
    # Scores of this size put some labels outside the support, so the rows' supports
    # differ; the loss is C^1 (its gradient entmax15(z) - q is continuous), so central
    # differences hold even next to a change of support.
    Z = X @ w[: X.shape[1] * K].reshape(-1, K) + (w[X.shape[1] * K:] if fit_intercept else 0)
    assert (sm.entmax15(Z) == 0).any()
    np.testing.assert_allclose(g, _fd(f, w), atol=1e-7, rtol=1e-6)


def test_optimiser_gradient_in_whitened_variables():
    # The function L-BFGS-B sees (whitened variables, gradient by the chain rule).
    rng = np.random.default_rng(2)
    X, Y = _toy(n=80, d=6)
    X = X @ rng.normal(size=(6, 6))
    est = SparsemaxClassifier(alpha=0.05, loss="entmax15")
    Q, Ybin = est._encode_targets(Y)
    fun, x0, to_w = est._problem(X, Q, Ybin)
    assert x0.size == 6 * 4 + 4
    v = x0 + rng.normal(size=x0.size)
    val, g = fun(v)
    np.testing.assert_allclose(g, _fd(fun, v), atol=1e-7, rtol=1e-6)
    assert val == est._objective(X, Q, Ybin)(to_w(v))[0]


def test_objective_is_the_mean_tsallis_loss_plus_l2():
    X, Y = _toy()
    Y[7] = 0
    alpha = 0.2
    est = SparsemaxClassifier(alpha=alpha, loss="entmax15")
    Q, Ybin = est._encode_targets(Y)
    rng = np.random.default_rng(3)
    W, b = rng.normal(size=(5, 4)), rng.normal(size=4)
    val, _ = est._objective(X, Q, Ybin)(np.concatenate([W.ravel(), b]))
    lab = Y.any(axis=1)
    ref = naive.entmax_loss(X[lab] @ W + b, Q[lab], alpha=1.5)  # float64 reference rows
    expected = float(np.mean(ref)) + 0.5 * alpha * float(np.sum(W * W))
    assert val == pytest.approx(expected, rel=1e-12, abs=1e-14)


def test_intercept_start_is_optimal_with_zero_weights():
    X, Y = _toy()
    Y[:, 3] = 0  # a label never seen: its intercept sits at the threshold
    Y[Y.sum(1) == 0, 0] = 1
    est = SparsemaxClassifier(alpha=0.1, loss="entmax15")
    Q, Ybin = est._encode_targets(Y)
    w0 = est._initial_weights(X.shape[1], Q, Ybin)
    assert not w0[: X.shape[1] * 4].any()
    _, g = est._objective(X, Q, Ybin)(w0)
    np.testing.assert_allclose(g[X.shape[1] * 4:], 0, atol=1e-12)
    np.testing.assert_allclose(sm.entmax15(w0[X.shape[1] * 4:]), Q.mean(axis=0), atol=1e-12)


def test_predict_is_support_and_proba_is_entmax15():
    X, Y = _toy()
    est = SparsemaxClassifier(alpha=1e-2, loss="entmax15", scale=1.7).fit(X, Y)
    Z = est.decision_function(X)
    np.testing.assert_array_equal(est.predict(X), (sm.entmax15(1.7 * Z) > 0).astype(int))
    P = est.predict_proba(X)
    np.testing.assert_allclose(P, sm.entmax15(Z))
    np.testing.assert_allclose(P, naive.entmax15(Z), atol=1e-12)
    assert est.scale_ == 1.7 and est.predict(X).dtype.kind == "i"
    assert est.coef_.shape == (4, 5) and est.intercept_.shape == (4,)
    assert est.score(X, Y) == np.mean((est.predict(X) == Y).all(axis=1))
    # a different model from the sparsemax one on the same data
    other = SparsemaxClassifier(alpha=1e-2, scale=1.7).fit(X, Y)
    assert not np.allclose(other.coef_, est.coef_, atol=1e-3)


def test_gradient_vanishes_at_the_fitted_optimum():
    X, Y = _toy(n=100)
    est = SparsemaxClassifier(alpha=1e-2, loss="entmax15", scale=1.0, tol=1e-10).fit(X, Y)
    Q, Ybin = est._encode_targets(Y)
    _, g = est._objective(X, Q, Ybin)(np.concatenate([est.coef_.T.ravel(), est.intercept_]))
    assert np.max(np.abs(g)) < 1e-6


@pytest.mark.filterwarnings("ignore::sparsemax_nb.apps.multilabel.TuningEdgeWarning")
def test_sparse_input_and_proportion_targets():
    X, Y = _toy()
    a = SparsemaxClassifier(alpha=1e-2, loss="entmax15", cv=2).fit(X, Y)
    b = SparsemaxClassifier(alpha=1e-2, loss="entmax15", cv=2).fit(sp.csr_matrix(X), Y)
    np.testing.assert_allclose(a.coef_, b.coef_, atol=1e-6)
    np.testing.assert_array_equal(a.predict(X), b.predict(sp.csr_matrix(X)))
    c = SparsemaxClassifier(alpha=1e-2, loss="entmax15", cv=2).fit(X, sm.labels_to_proportions(Y))
    np.testing.assert_allclose(a.coef_, c.coef_, atol=1e-6)


def test_multiclass_labels():
    rng = np.random.default_rng(3)
    centers = np.array([[3, 0], [0, 3], [-3, -3]])
    y = rng.integers(0, 3, 150)
    X = centers[y] + rng.normal(size=(150, 2))
    names = np.array(["a", "b", "c"])[y]
    est = SparsemaxClassifier(alpha=1e-3, loss="entmax15").fit(X, names)
    ref = SparsemaxClassifier(alpha=1e-3).fit(X, names)
    assert set(est.predict(X)) <= {"a", "b", "c"}
    assert est.score(X, names) >= ref.score(X, names) - 0.05
    P = est.predict_proba(X)
    np.testing.assert_allclose(P.sum(1), 1)
    assert (P == 0).any()


def test_critical_scales_match_the_support():
    # Between consecutive critical scales the support of entmax15(t z) is constant, and its
    # size is 1 + the number of critical scales above t (the scales from the pairwise
    # differences directly, not from the prefix sums the classifier uses).
    rng = np.random.default_rng(4)
    Z = rng.normal(size=(50, 7)) * rng.uniform(0.1, 10, size=(50, 1))
    Z[0, :3] = Z[0, 0]  # a tie at the top: an infinite scale, ignored
    Zs = -np.sort(-Z, axis=1)
    S = np.array([[np.sum((r[:k] - r[k]) ** 2) for k in range(1, 7)] for r in Zs])
    with np.errstate(divide="ignore"):
        crit = 2.0 / np.sqrt(S)
    est = SparsemaxClassifier(loss="entmax15")
    grid = est._rule_grid(Z)
    assert np.all(np.diff(grid) > 0) and len(grid) > 20
    for t in grid:
        size = (sm.entmax15(t * Z) > 0).sum(axis=1)
        np.testing.assert_array_equal(size, 1 + (crit > t).sum(axis=1))


def test_rule_grid_runs_from_every_label_to_one_label():
    rng = np.random.default_rng(5)
    Z = rng.normal(size=(200, 9)) * 3
    est = SparsemaxClassifier(loss="entmax15")
    grid = est._rule_grid(Z)
    assert est._labels_from_scores(Z, grid[0]).all()
    assert (est._labels_from_scores(Z, grid[-1]).sum(axis=1) == 1).all()
    # 1.5-entmax keeps more labels than sparsemax at the same scores and scale
    sm_labels = SparsemaxClassifier()._labels_from_scores(Z, 1.0)
    en_labels = est._labels_from_scores(Z, 1.0)
    assert (en_labels >= sm_labels).all() and en_labels.sum() > sm_labels.sum()


@pytest.mark.parametrize("bad", ["softmax", "Entmax15", "", None, 1.5, ("entmax15",)])
def test_bad_loss_is_a_clear_error(bad):
    X, Y = _toy()
    est = SparsemaxClassifier(loss=bad)
    with pytest.raises(ValueError, match=r"loss must be one of 'sparsemax', 'entmax15'; got "):
        est.fit(X, Y)
    assert not hasattr(est, "coef_")
    assert LOSSES == ("sparsemax", "entmax15")


def test_warm_start_and_whitening_reach_the_same_optimum(monkeypatch):
    import sparsemax_nb.apps.multilabel as ML

    rng = np.random.default_rng(10)
    X, Y = _toy(n=150, d=6)
    X = X @ rng.normal(size=(6, 6))
    kw = dict(loss="entmax15", scale=1.0, tol=1e-9, max_iter=5000)
    cold = SparsemaxClassifier(alpha=1e-3, **kw).fit(X, Y)
    warm = SparsemaxClassifier(alpha=1e-1, warm_start=True, **kw).fit(X, Y)
    warm.set_params(alpha=1e-3).fit(X, Y)
    monkeypatch.setattr(ML, "_PRECONDITION_MAX_FEATURES", 0)  # plain L-BFGS
    plain = SparsemaxClassifier(alpha=1e-3, **kw).fit(X, Y)
    for other in (warm, plain):
        np.testing.assert_allclose(other.coef_, cold.coef_, atol=1e-4)
        np.testing.assert_allclose(other.intercept_, cold.intercept_, atol=1e-4)


def _all_labels_f1(Y):
    return micro_f1(Y, np.ones_like(Y))


def test_toy_mulan_f1_near_sparsemax():
    xml = TOY / "toy.xml"
    tr = load_arff(TOY / "toy-train.arff", xml=xml)
    te = load_arff(TOY / "toy-test.arff", xml=xml)
    f1 = {}
    for loss in LOSSES:
        est = SparsemaxClassifier(alpha=1e-2, loss=loss, cv=3).fit(tr.X, tr.Y)
        f1[loss] = micro_f1(te.Y, est.predict(te.X))
    # a loose margin around sparsemax's F1, and better than predicting every label
    assert f1["entmax15"] >= f1["sparsemax"] - 0.1
    assert f1["entmax15"] > _all_labels_f1(te.Y)


def test_synthetic_documents_f1_and_proportions_near_sparsemax():
    d = make_synthetic(5, 60, n_train=300, n_dev=10, n_test=200, vocab_size=100, seed=0)
    tr, te = d["train"], d["test"]
    res = {}
    for loss in LOSSES:
        est = SparsemaxClassifier(alpha=1e-3, loss=loss, cv=3).fit(tr.X, tr.Y)
        assert float(est.scale_) in est.rule_grid_ and est.rule_at_edge_ is None
        P = est.predict_proba(te.X)
        np.testing.assert_allclose(P.sum(1), 1, atol=1e-12)
        res[loss] = (micro_f1(te.Y, est.predict(te.X)), js_divergence(te.Q, P))
    assert res["entmax15"][0] >= res["sparsemax"][0] - 0.05
    assert res["entmax15"][0] > _all_labels_f1(te.Y) + 0.1
    assert res["entmax15"][1] <= 1.5 * res["sparsemax"][1]


# --------------------------------------------------------------------------- the command
def _cli(argv, capsys):
    from sparsemax_nb import cli

    rc = cli.main(["multilabel", "--no-progress", *argv])
    return rc, capsys.readouterr()


def test_cli_loss_choices_are_the_classifier_losses():
    from sparsemax_nb import cli

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["multilabel"]
    action = next(a for a in sub._actions if a.dest == "loss")
    assert tuple(action.choices) == LOSSES and action.default == "sparsemax"


def test_cli_entmax15_is_a_row_beside_sparsemax(tmp_path, capsys):
    import json

    out = tmp_path / "res.json"
    rc, text = _cli(["--data", str(TOY / "toy-train.arff"), "--alphas", "1e-2,1", "--cv", "2",
                     "--bootstrap", "100", "--loss", "entmax15", "--json", str(out)], capsys)
    assert rc == 0, text.err
    rows = [ln.split()[0] for ln in text.out.splitlines() if ln.startswith("  ") and ln.split()]
    for name in ("logistic", "softmax", "sparsemax", "entmax15"):
        assert name in rows
    assert "entmax15-sparsemax" in text.out
    report = json.loads(out.read_text())
    assert report["loss"] == "entmax15"
    res = report["results"]["toy-train.arff"]
    assert list(res["models"]) == ["logistic", "softmax", "sparsemax", "entmax15"]
    r = res["models"]["entmax15"]
    assert r["rule"] == "scale" and r["alpha"] in (1e-2, 1)
    assert r["cv_micro_f1"] == max(v["cv_micro_f1"] for v in r["cv"].values())
    assert r["micro_f1"] >= res["models"]["sparsemax"]["micro_f1"] - 0.15
    d, lo, hi = res["bootstrap"]["entmax15-sparsemax"]["micro"]
    assert lo <= d <= hi


def test_cli_default_has_no_entmax15_row(tmp_path, capsys):
    import json

    out = tmp_path / "res.json"
    rc, text = _cli(["--data", str(TOY / "toy-train.arff"), "--alphas", "1e-2", "--cv", "2",
                     "--bootstrap", "0", "--json", str(out)], capsys)
    assert rc == 0, text.err
    assert "entmax15" not in text.out
    report = json.loads(out.read_text())
    assert report["loss"] == "sparsemax"
    assert list(report["results"]["toy-train.arff"]["models"]) == ["logistic", "softmax", "sparsemax"]


def test_cli_paper_table_with_entmax15(capsys):
    rc, text = _cli(["--paper", "--data-dir", str(TOY), "--sets", "toy", "--alphas", "1e-2,1",
                     "--cv", "2", "--bootstrap", "100", "--loss", "entmax15"], capsys)
    assert rc == 0, text.err
    table = text.out.split("beside the paper's Table 2")[1]
    assert "entmax15 ours" in table and "entmax15 paper" in table
    assert "entmax15 - sparsemax" in table


def test_cli_bad_loss_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as e:
        _cli(["--loss", "softmax"], capsys)
    assert e.value.code == 2
    assert "invalid choice: 'softmax'" in capsys.readouterr().err


def test_cli_synthetic_with_entmax15(capsys, monkeypatch):
    from sparsemax_nb.apps import datasets

    original = datasets.make_synthetic
    small = lambda K, L, seed=None: original(  # noqa: E731
        K, L, n_train=150, n_dev=60, n_test=80, vocab_size=60, seed=seed)
    monkeypatch.setattr(datasets, "make_synthetic", small)
    rc, text = _cli(["--labels", "4", "--length", "30", "--alphas", "1e-3,1e-1", "--loss", "entmax15",
                     "--sweep-lengths", "20,30"], capsys)
    assert rc == 0, text.err
    rows = [ln.split() for ln in text.out.splitlines() if ln.startswith("  entmax15 ")]
    assert len(rows) == 2  # one per length
    assert all(0 <= float(r[1]) <= 1 for r in rows)
    sweep = text.out.split("against document length L")[1]
    assert "entmax15" in sweep.splitlines()[1]
