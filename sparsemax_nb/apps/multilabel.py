"""Linear multi-label classifiers: sparsemax loss and the paper's two baselines.

Martins & Astudillo (2016), section 4.1, compare three linear models on multi-label data,
each trained with L2 regularisation by L-BFGS:

* :class:`SparsemaxClassifier`: the sparsemax loss against the label proportions
  ``q = y / sum(y)``; the predicted label set is the support of ``sparsemax(t z)``, with the
  scale ``t`` tuned by cross-validation on the training set. With ``loss="entmax15"`` the
  same model is trained with the Tsallis-1.5 Fenchel-Young loss of 1.5-entmax (Peters,
  Niculae & Martins, 2019) and predicts the support of ``entmax15(t z)``;
* :class:`SoftmaxClassifier`: the cross-entropy of ``softmax(z)`` against ``q``; labels are
  those with probability above a threshold tuned by cross-validation;
* :class:`LogisticClassifier`: one logistic regression per label; labels above a tuned
  probability threshold, proportions by normalising the label probabilities.

All three are scikit-learn estimators (scikit-learn and scipy: ``pip install
sparsemax_nb[ml]``). ``Y`` may be a 0/1 indicator matrix, a matrix of proportions (rows on
the simplex), or a 1-D vector of class labels (ordinary multiclass classification, where the
prediction is the arg max).

The label rules' parameters are tuned on out-of-fold scores among candidates taken from the
data (:func:`rule_grid`, :func:`pick_rule`): quantiles of the values at which some row's
label set changes, so the grid always runs from "every label" to "one label per row"; a
pick at either end raises :class:`TuningEdgeWarning`.

Gradients are written by hand (no autodiff): with scores ``Z = X W + b`` and ``G = dL/dZ``
(for sparsemax ``G = (sparsemax(Z) - Q) / n`` from :func:`sparsemax_nb.sparsemax_loss_and_grad`,
for 1.5-entmax ``G = (entmax15(Z) - Q) / n`` from :func:`sparsemax_nb.entmax15_loss_and_grad`),
``dL/dW = X^T G + alpha W`` and ``dL/db = sum_i G_i``.
"""

import contextlib
import warnings

import numba
import numpy as np

try:
    import scipy.sparse as _sp
    from scipy.optimize import minimize as _minimize
    from sklearn.base import BaseEstimator, ClassifierMixin, clone
    from sklearn.exceptions import DataConversionWarning
    from sklearn.model_selection import KFold
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
    from threadpoolctl import threadpool_limits as _threadpool_limits
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "sparsemax_nb.multilabel needs scikit-learn and scipy: pip install 'sparsemax_nb[ml]'"
    ) from e

from ..api import (
    entmax15,
    entmax15_loss_and_grad,
    labels_to_proportions,
    sparsemax,
    sparsemax_loss_and_grad,
)
from .datasets import macro_f1, micro_f1

__all__ = [
    "SparsemaxClassifier",
    "SoftmaxClassifier",
    "LogisticClassifier",
    "TuningEdgeWarning",
    "LOSSES",
    "rule_grid",
    "pick_rule",
]


class TuningEdgeWarning(UserWarning):
    """A tuned value (a label rule's threshold or scale, or ``alpha``) is at an end of its grid."""


# SparsemaxClassifier's ``loss``: the mapping whose Fenchel-Young loss trains the model and
# whose support gives the labels, with the loss-and-gradient function of that loss.
_MAPPINGS = {
    "sparsemax": (sparsemax, sparsemax_loss_and_grad),
    "entmax15": (entmax15, entmax15_loss_and_grad),
}
LOSSES = tuple(_MAPPINGS)


def _check_loss(loss):
    """``loss`` if it names one of :data:`LOSSES`, else a ValueError listing them."""
    if not isinstance(loss, str) or loss not in _MAPPINGS:
        choices = ", ".join(repr(name) for name in LOSSES)
        raise ValueError(f"loss must be one of {choices}; got {loss!r}")
    return loss


# Up to this many features the fit works in whitened variables (see _preconditioner): the
# eigendecomposition of the d x d Gram matrix costs little next to the fit.
_PRECONDITION_MAX_FEATURES = 2000

# Candidate values of a label rule: this many quantiles of the values where the prediction
# changes, so the grid follows the scores whatever their scale.
_N_RULE_GRID = 64


@contextlib.contextmanager
def _serial_numba():
    """Run this thread's Numba kernels on one thread (restored on exit).

    The fit makes hundreds of loss calls of a few milliseconds each; above the library's
    serial cut-off each call opens a parallel region, and on a machine whose cores are busy
    the region waits for its second thread (measured: 60 ms per L-BFGS evaluation instead
    of 36 ms on the TMC2007-like profile). ``numba.set_num_threads`` is thread-local.
    """
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def rule_grid(critical, *, upper=None, n=_N_RULE_GRID):
    """Candidate values for a label rule from the values where its prediction changes.

    Parameters
    ----------
    critical : array_like
        Positive values at which some row's predicted label set changes (probabilities of
        the non-top labels for a threshold rule, critical scales for sparsemax's scale).
        Non-finite and non-positive entries are ignored.
    upper : float, optional
        A bound the largest candidate stays below (1 for a probability threshold).
    n : int, optional
        Number of quantiles.

    Returns
    -------
    numpy.ndarray
        Increasing candidates: one below every critical value, the geometric midpoints of
        consecutive distinct quantiles of ``log(critical)``, and one above every critical
        value. The two ends are the extreme rules (every label for the lowest value, one
        label per row for the highest, for both rules here). Empty when no value is usable.
    """
    c = np.asarray(critical, dtype=np.float64).ravel()
    c = c[np.isfinite(c) & (c > 0)]
    if c.size == 0:
        return np.empty(0)
    lc = np.log(c)
    q = np.unique(np.quantile(lc, np.linspace(0.0, 1.0, int(n) + 1)))
    # Midpoints, never a critical value itself (where the rule's ">" would be ambiguous).
    mids = 0.5 * (q[:-1] + q[1:])
    lo, hi = np.exp(q[0]) / 2.0, np.exp(q[-1]) * 2.0
    if upper is not None:
        hi = min(hi, 0.5 * (np.exp(q[-1]) + upper))
    return np.concatenate([[lo], np.exp(mids), [hi]])


def pick_rule(est, Z, Y):
    """Pick a fitted model's label-rule parameter on scores ``Z`` with known labels ``Y``.

    Parameters
    ----------
    est : SparsemaxClassifier, SoftmaxClassifier or LogisticClassifier
        Supplies the rule (:meth:`_labels_from_scores`) and its critical values.
    Z : numpy.ndarray, shape (n, K)
        Scores, e.g. out-of-fold decision values.
    Y : array_like, shape (n, K)
        True 0/1 labels.

    Returns
    -------
    value : float
        The grid value of best micro-F1 (ties: best macro-F1, then the first).
    score : float
        Its micro-F1.
    grid : numpy.ndarray
        The candidates tried (see :func:`rule_grid`).
    edge : {None, "low", "high"}
        Whether ``value`` is the first or last candidate.
    """
    Ytrue = np.asarray(Y) > 0
    grid = est._rule_grid(Z)
    if grid.size == 0:
        return est._default_rule(), micro_f1(Ytrue, est._labels_from_scores(Z, est._default_rule())), grid, None
    best, best_key, best_i = None, None, -1
    for i, v in enumerate(grid):
        pred = est._labels_from_scores(Z, float(v))
        key = (micro_f1(Ytrue, pred), macro_f1(Ytrue, pred))
        if best_key is None or key > best_key:
            best, best_key, best_i = float(v), key, i
    edge = "low" if best_i == 0 else ("high" if best_i == grid.size - 1 else None)
    return best, best_key[0], grid, edge


def _non_top(P):
    """The entries of each row except its (first) largest: where a threshold rule changes."""
    top = np.argmax(P, axis=1)
    mask = np.ones(P.shape, dtype=bool)
    mask[np.arange(P.shape[0]), top] = False
    return P[mask]


def _log_softmax(Z):
    m = np.max(Z, axis=1, keepdims=True)
    S = Z - m
    return S - np.log(np.sum(np.exp(S), axis=1, keepdims=True))


def _sigmoid(Z):
    # exp of a non-positive number only: no overflow warnings for large |z|.
    e = np.exp(-np.abs(Z))
    return np.where(Z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _at_least_one(labels, Z):
    """Add each row's arg max to an empty predicted label set (every document has a label)."""
    empty = ~labels.any(axis=1)
    if empty.any():
        labels[np.flatnonzero(empty), np.argmax(Z[empty], axis=1)] = True
    return labels


class _LinearMultilabel(ClassifierMixin, BaseEstimator):
    """Shared fitting code: a linear model ``Z = X W + b`` trained by L-BFGS-B."""

    _cv_param: "str | None" = None  # name of the parameter tuned by cross-validation ("scale", "threshold")
    _skips_unlabelled = True  # rows of y with no label have no proportions

    # ------------------------------------------------------------------ targets
    def _encode_targets(self, y):
        """Turn ``y`` into ``(Q, Ybin)`` and remember the kind of target."""
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            warnings.warn(
                "A column-vector y was passed when a 1d array was expected; it is treated "
                "as class labels (use a 2-D indicator matrix with several columns for "
                "multi-label data).",
                DataConversionWarning,
                stacklevel=3,
            )
            y = y.ravel()
        if y.ndim == 1:
            check_classification_targets(y)
            self.classes_, idx = np.unique(y, return_inverse=True)
            if self.classes_.size < 2:
                raise ValueError(
                    f"{type(self).__name__} needs at least 2 classes in y; got "
                    f"{self.classes_.size} class"
                )
            Q = np.zeros((y.shape[0], self.classes_.size))
            Q[np.arange(y.shape[0]), idx] = 1.0
            self._multilabel = False
            return Q, Q > 0
        if y.ndim != 2:
            raise ValueError(f"y must be 1-D class labels or a 2-D (n, K) matrix; got {y.ndim}-D")
        if y.dtype.kind not in "biuf":
            raise ValueError(f"a 2-D y must hold 0/1 labels or proportions; got dtype {y.dtype}")
        yf = y.astype(np.float64)
        if not np.isfinite(yf).all():
            raise ValueError("y holds NaN or infinity")
        if y.shape[1] < 2:
            raise ValueError("a 2-D y needs at least 2 label columns")
        self._multilabel = True
        self.classes_ = np.arange(y.shape[1])
        if np.isin(yf, (0.0, 1.0)).all():
            # A row with no label has no proportions: the sparsemax and softmax losses skip
            # it (the logistic loss uses it: all labels negative).
            Q = np.zeros_like(yf)
            lab = yf.any(axis=1)
            if self._skips_unlabelled and not lab.any():
                raise ValueError("every row of y is empty: no label to learn proportions from")
            Q[lab] = labels_to_proportions(yf[lab])
            return Q, yf > 0
        if (yf < 0).any() or not np.allclose(yf.sum(axis=1), 1.0, atol=1e-6 * y.shape[1]):
            raise ValueError(
                "a 2-D y must be a 0/1 label matrix or proportions (non-negative rows summing to 1)"
            )
        return yf, yf > 0

    # ------------------------------------------------------------------ fitting
    def _objective(self, X, Q, Ybin):
        """Return ``f(w) -> (value, gradient)`` for the flattened ``[W; b]``."""
        n, d = X.shape
        K = Q.shape[1]
        alpha = float(self.alpha)
        fit_b = bool(self.fit_intercept)

        lab = Ybin.any(axis=1)
        skip = self._skips_unlabelled and not lab.all()

        def f(w):
            W = w[: d * K].reshape(d, K)
            b = w[d * K :] if fit_b else 0.0
            Z = np.asarray(X @ W) + b
            if skip:  # the mean runs over the labelled rows; the others get no gradient
                loss, G_lab = self._loss_grad(Z[lab], Q[lab], Ybin[lab])
                G = np.zeros_like(Z)
                G[lab] = G_lab
            else:
                loss, G = self._loss_grad(Z, Q, Ybin)
            gW = np.asarray(X.T @ G) + alpha * W  # chain rule: dL/dW = X^T dL/dZ
            val = float(loss) + 0.5 * alpha * float(np.vdot(W, W))
            if fit_b:
                return val, np.concatenate([gW.ravel(), G.sum(axis=0)])
            return val, gW.ravel()

        return f

    def _initial_weights(self, d, Q, Ybin):
        K = Q.shape[1]
        w0 = np.zeros(d * K + (K if self.fit_intercept else 0))
        if (
            self.warm_start
            and getattr(self, "coef_", None) is not None
            and self.coef_.shape == (K, d)
        ):
            w0[: d * K] = self.coef_.T.ravel()
            if self.fit_intercept:
                w0[d * K :] = self.intercept_
        elif self.fit_intercept:
            # With W = 0 every model has a closed-form optimal intercept (see _intercept0);
            # starting there saves the first iterations of every fit alike.
            w0[d * K :] = self._intercept0(Q, Ybin)
        return w0

    def _preconditioner(self, X):
        """``(U, s)`` with ``W = U diag(s) V``, or None (too many features, or degenerate).

        ``U diag(lam) U^T`` is the eigendecomposition of ``X^T X / n`` and
        ``s = 1 / sqrt(lam + alpha)``: in the variables ``V`` the regularised objective of a
        loss with unit curvature has an identity Hessian, whatever the correlations between
        features. L-BFGS then needs far fewer iterations (Emotions, alpha = 1e-2:
        sparsemax 159 -> 40, softmax 99 -> 57), most of all for the sparsemax loss, whose
        curvature is 1 on the support. The decomposition is kept between warm-started fits
        on the same ``X`` (an alpha path).
        """
        n, d = X.shape
        if d > _PRECONDITION_MAX_FEATURES or n == 0:
            return None
        cache = getattr(self, "_gram_cache", None)
        if cache is not None and cache[0] is X:
            lam, U = cache[1], cache[2]
        else:
            G = X.T @ X
            G = np.asarray(G.toarray() if _sp.issparse(G) else G, dtype=np.float64) / n
            lam, U = np.linalg.eigh(G)
            lam = np.maximum(lam, 0.0)
            if self.warm_start:
                self._gram_cache = (X, lam, U)
        # A floor keeps s finite for alpha = 0 (features that are constant or collinear).
        floor = float(self.alpha) + 1e-10 * max(float(lam[-1]) if lam.size else 0.0, 1.0)
        return U, 1.0 / np.sqrt(lam + floor)

    def _problem(self, X, Q, Ybin):
        """What L-BFGS-B minimises: ``(fun, x0, to_w)``.

        ``fun(x) -> (value, gradient)`` is :meth:`_objective` in the optimiser's variables
        (whitened ones when :meth:`_preconditioner` gives a decomposition, with the gradient
        carried through by the chain rule), ``x0`` the start and ``to_w(x)`` the flattened
        ``[W; b]`` of ``x``. Call it with BLAS and Numba limited as in :meth:`_fit_weights`.
        """
        n, d = X.shape
        K = Q.shape[1]
        w0 = self._initial_weights(d, Q, Ybin)
        dK = d * K
        f = self._objective(X, Q, Ybin)
        pre = self._preconditioner(X)
        if pre is None:
            return f, w0, lambda x: x
        U, sc = pre

        def fun(v):
            W = U @ (sc[:, None] * v[:dK].reshape(d, K))
            val, g = f(np.concatenate([W.ravel(), v[dK:]]))
            gV = sc[:, None] * (U.T @ g[:dK].reshape(d, K))  # chain rule
            return val, np.concatenate([gV.ravel(), g[dK:]])

        def to_w(v):
            return np.concatenate([(U @ (sc[:, None] * v[:dK].reshape(d, K))).ravel(), v[dK:]])

        x0 = np.concatenate([((U.T @ w0[:dK].reshape(d, K)) / sc[:, None]).ravel(), w0[dK:]])
        return fun, x0, to_w

    def _fit_weights(self, X, Q, Ybin):
        n, d = X.shape
        K = Q.shape[1]
        dK = d * K
        # L-BFGS-B makes many small level-1 BLAS calls per iteration; a multi-threaded
        # OpenBLAS spends more time waking its threads than computing (measured 30x slower
        # on a busy 2-core machine), so BLAS runs single-threaded during the fit, and so
        # do the library's kernels (see _serial_numba).
        with _threadpool_limits(limits=1, user_api="blas"), _serial_numba():
            fun, x0, to_w = self._problem(X, Q, Ybin)
            res = _minimize(
                fun,
                x0,
                method="L-BFGS-B",
                jac=True,
                options={"maxiter": int(self.max_iter), "gtol": float(self.tol), "ftol": 1e-12},
            )
            x = to_w(res.x)
        self.n_iter_ = int(res.nit)
        self.n_fev_ = int(res.nfev)
        self.coef_ = x[:dK].reshape(d, K).T.copy()  # (K, d), as scikit-learn
        self.intercept_ = x[dK:].copy() if self.fit_intercept else np.zeros(K)

    def _check_params(self):
        if not (np.isfinite(self.alpha) and self.alpha >= 0):
            raise ValueError(f"alpha must be a finite number >= 0; got {self.alpha!r}")
        if int(self.max_iter) < 1:
            raise ValueError(f"max_iter must be >= 1; got {self.max_iter!r}")
        v = getattr(self, self._cv_param)
        if not (isinstance(v, str) and v == "cv"):
            try:
                ok = np.isfinite(float(v)) and float(v) > 0
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(f"{self._cv_param} must be 'cv' or a number > 0; got {v!r}")

    def fit(self, X, y):
        """Fit the linear model, then (for multi-label ``y``) tune the label rule by CV.

        Parameters
        ----------
        X : array_like or scipy.sparse matrix, shape (n_samples, n_features)
        y : array_like
            Shape (n_samples, K): 0/1 label indicators (turned into proportions
            ``y / sum(y)``; the sparsemax and softmax losses skip rows with no label, the
            logistic loss uses them) or proportions; or shape (n_samples,): class labels
            (multiclass).

        Returns
        -------
        self
        """
        self._check_params()
        X, y = validate_data(
            self, X, y, accept_sparse=("csr", "csc"), multi_output=True, dtype=np.float64,
            y_numeric=False,
        )
        Q, Ybin = self._encode_targets(y)
        self._fit_weights(X, Q, Ybin)
        v = getattr(self, self._cv_param)
        if isinstance(v, str):
            v = self._tune(X, y) if self._multilabel else self._default_rule()
            if not self._multilabel:
                self.rule_grid_, self.rule_at_edge_ = None, None
        else:
            self.rule_grid_, self.rule_at_edge_ = None, None
        setattr(self, self._cv_param + "_", float(v))
        return self

    def _tune(self, X, y):
        """Pick the label rule's parameter by K-fold CV on the training set (micro F1).

        The candidates come from the out-of-fold scores (:func:`rule_grid`): quantiles of
        the values where a row's label set changes, so the grid covers every rule from "all
        labels" to "one label per row" whatever the number of labels or the score scale.
        """
        n = X.shape[0]
        n_splits = min(int(self.cv), n)
        if n_splits < 2:
            self.rule_grid_, self.rule_at_edge_ = None, None
            return self._default_rule()
        Z = np.empty((n, np.asarray(y).shape[1]))
        inner = clone(self).set_params(**{self._cv_param: self._default_rule()})
        for tr, te in KFold(n_splits, shuffle=True, random_state=self.random_state).split(X):
            est = clone(inner).fit(X[tr], y[tr])
            Z[te] = est.decision_function(X[te])
        best, score, grid, edge = pick_rule(self, Z, y)
        self.cv_score_ = score
        self.rule_grid_ = grid
        self.rule_at_edge_ = edge
        if edge is not None:
            warnings.warn(
                f"{type(self).__name__}: the tuned {self._cv_param} {best:.3g} is the "
                f"{'lowest' if edge == 'low' else 'highest'} candidate, an extreme rule "
                f"({self._edge_meaning(edge)})",
                TuningEdgeWarning,
                stacklevel=3,
            )
        return best

    # ------------------------------------------------------------------ prediction
    def decision_function(self, X):
        """Linear scores ``z = X W^T + b``.

        Parameters
        ----------
        X : array_like or scipy.sparse matrix, shape (n_samples, n_features)

        Returns
        -------
        numpy.ndarray
            Shape (n_samples, K); for binary class-label ``y``, shape (n_samples,) holding
            ``z_1 - z_0`` (positive: the second class).
        """
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, accept_sparse=("csr", "csc"), dtype=np.float64, reset=False)
        Z = np.asarray(X @ self.coef_.T) + self.intercept_
        if not self._multilabel and Z.shape[1] == 2:
            return Z[:, 1] - Z[:, 0]
        return Z

    def _scores(self, X):
        Z = self.decision_function(X)
        if Z.ndim == 1:
            Z = np.column_stack([np.zeros_like(Z), Z])
        return Z

    def predict(self, X):
        """Predicted labels.

        Parameters
        ----------
        X : array_like or scipy.sparse matrix, shape (n_samples, n_features)

        Returns
        -------
        numpy.ndarray
            Multi-label ``y``: an (n_samples, K) 0/1 int matrix (see the class's label rule).
            Class-label ``y``: the class of largest score, shape (n_samples,).
        """
        Z = self._scores(X)
        if not self._multilabel:
            return self.classes_[np.argmax(Z, axis=1)]
        v = getattr(self, self._cv_param + "_")
        return self._labels_from_scores(Z, v).astype(np.int64)

    def predict_proba(self, X):
        """Predicted proportions (multi-label) or class probabilities (multiclass).

        Parameters
        ----------
        X : array_like or scipy.sparse matrix, shape (n_samples, n_features)

        Returns
        -------
        numpy.ndarray, shape (n_samples, K)
            Rows on the simplex.
        """
        return self._proba(self._scores(X))

    def score(self, X, y, sample_weight=None):
        """Accuracy: subset accuracy for multi-label ``y`` (proportions count as their support).

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
        y : array_like
            As for :meth:`fit`.
        sample_weight : array_like, optional

        Returns
        -------
        float
        """
        from sklearn.metrics import accuracy_score

        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] > 1:
            y = (y > 0).astype(np.int64)
        return accuracy_score(y, self.predict(X), sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.classifier_tags.multi_label = True
        tags.target_tags.multi_output = True
        return tags


class SparsemaxClassifier(_LinearMultilabel):
    """Linear multi-label classifier trained with the sparsemax loss (Martins & Astudillo 2016).

    Minimises ``mean_i L_sparsemax(W x_i + b; q_i) + alpha/2 ||W||^2`` by L-BFGS-B, with
    ``q_i = y_i / sum(y_i)``. ``predict_proba`` gives ``sparsemax(z)`` (the proportions the
    loss was fitted to), ``predict`` the support of ``sparsemax(scale_ * z)``.

    With ``loss="entmax15"`` the loss is the Tsallis-1.5 Fenchel-Young loss of 1.5-entmax
    (Peters, Niculae & Martins, 2019; :func:`sparsemax_nb.entmax15_loss`, gradient
    ``entmax15(z) - q``), ``predict_proba`` gives ``entmax15(z)`` and ``predict`` the
    support of ``entmax15(scale_ * z)``; everything else is the same.

    Parameters
    ----------
    alpha : float, optional
        L2 regularisation strength on ``W`` (not on ``b``).
    loss : {"sparsemax", "entmax15"}, optional
        The mapping (listed in :data:`LOSSES`) whose Fenchel-Young loss is minimised and
        whose support gives the labels; any other value raises ``ValueError`` at
        :meth:`fit`.
    scale : "cv" or float, optional
        ``t`` in ``support(sparsemax(t z))`` (``entmax15(t z)`` for ``loss="entmax15"``):
        ``"cv"`` (default) picks it by ``cv``-fold
        cross-validation on the training set (micro F1) among quantiles of the scales at
        which the out-of-fold supports change (see :func:`rule_grid`); larger ``t``
        predicts fewer labels. A :class:`TuningEdgeWarning` says when the pick is an end of
        that grid.
    cv : int, optional
        Number of folds for the tuning.
    fit_intercept : bool, optional
    max_iter : int, optional
        L-BFGS-B iterations.
    tol : float, optional
        L-BFGS-B projected-gradient tolerance. With at most 2000 features the fit runs in
        whitened variables ``V`` (``W = U diag((lam + alpha)^-1/2) V`` from the
        eigendecomposition of ``X^T X / n``), which the tolerance then applies to; the
        optimum is the same, reached in fewer iterations.
    random_state : int, optional
        Seed of the CV fold shuffle.
    warm_start : bool, optional
        Start L-BFGS-B from the previous fit's weights (same shapes), e.g. along a path of
        ``alpha`` values; otherwise from ``W = 0`` and the optimal intercept for ``W = 0``.

    Attributes
    ----------
    coef_ : ndarray of shape (K, n_features)
    intercept_ : ndarray of shape (K,)
    scale_ : float
        The scale used by :meth:`predict`.
    classes_ : ndarray
        Label indices (multi-label) or the class labels (multiclass).
    n_iter_, n_fev_ : int
        L-BFGS-B iterations and objective evaluations.
    rule_grid_ : ndarray or None
        The candidates tried by ``scale="cv"`` (None when not tuned).
    rule_at_edge_ : {None, "low", "high"}
        Whether the tuned value was the first or last candidate.
    cv_score_ : float
        Out-of-fold micro-F1 of the tuned rule.

    Examples
    --------
    >>> import numpy as np
    >>> from sparsemax_nb.apps.multilabel import SparsemaxClassifier
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]] * 10)
    >>> Y = np.array([[1, 0], [0, 1], [1, 1]] * 10)
    >>> clf = SparsemaxClassifier(alpha=1e-4, scale=2.0).fit(X, Y)
    >>> clf.predict(X[:3])
    array([[1, 0],
           [0, 1],
           [1, 1]])
    >>> np.count_nonzero(clf.predict_proba(X[:3]), axis=1)  # support of sparsemax(z), t = 1
    array([2, 2, 2])

    With L2 regularisation the fitted scores stop just short of the margin (a one-hot
    target needs ``z_k - z_j >= 1``), so ``sparsemax(z)`` keeps small weights on wrong
    labels; a scale ``t > 1`` (tuned by ``scale="cv"``) removes them from the label set.

    The same model trained with the 1.5-entmax loss:

    >>> clf15 = SparsemaxClassifier(alpha=1e-4, loss="entmax15", scale=2.0).fit(X, Y)
    >>> clf15.predict(X[:3])
    array([[1, 0],
           [0, 1],
           [1, 1]])
    """

    _cv_param = "scale"

    def __init__(
        self, alpha=1e-3, *, loss="sparsemax", scale="cv", cv=3, fit_intercept=True,
        max_iter=1000, tol=1e-6, random_state=0, warm_start=False,
    ):
        self.alpha = alpha
        self.loss = loss
        self.scale = scale
        self.cv = cv
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.warm_start = warm_start

    def _check_params(self):
        _check_loss(self.loss)
        super()._check_params()

    def _default_rule(self):
        return 1.0

    def _intercept0(self, Q, Ybin):
        # The mean loss over rows with W = 0 has gradient mapping(b) - m, m = mean(q) on the
        # simplex: b = m for sparsemax (sparsemax(m) = m), b = 2 sqrt(m) for 1.5-entmax
        # (entmax15(b) = [b / 2 - tau]_+^2 = m with tau = 0; labels never seen sit at 0 = tau).
        lab = Ybin.any(axis=1)
        if not lab.any():
            return np.zeros(Q.shape[1])
        m = Q[lab].mean(axis=0)
        return 2.0 * np.sqrt(m) if self.loss == "entmax15" else m

    def _rule_grid(self, Z):
        # Sorted row z_(1) >= z_(2) >= ...: the k-th is in the support of sparsemax(t z) iff
        # t * sum_{j<k} (z_(j) - z_(k)) < 1, so the support shrinks as t grows and changes
        # at t_k = 1 / sum_{j<k} (z_(j) - z_(k)). For 1.5-entmax, [t z / 2 - tau]_+^2, the
        # k-th is in the support iff sum_{j<k} (t z_(j) / 2 - t z_(k) / 2)^2 < 1: it changes
        # at t_k = 2 / sqrt(S_k), S_k = sum_{j<k} (z_(j) - z_(k))^2.
        Zs = -np.sort(-np.asarray(Z, dtype=np.float64), axis=1)
        k = np.arange(1, Zs.shape[1])
        if self.loss == "entmax15":
            # With y_j = z_(1) - z_(j) (so y_1 = 0 <= y_j <= y_k for j < k),
            # S_k = (k - 1) y_k^2 - 2 y_k sum y_j + sum y_j^2 from prefix sums; every term is
            # at most 2 (k - 1) y_k^2 <= 2 (k - 1) S_k, so the relative rounding error stays
            # O(k eps), with no O(K^2) pairwise differences.
            Y = Zs[:, :1] - Zs
            y = Y[:, 1:]
            S = k * y * y - 2.0 * y * np.cumsum(Y, axis=1)[:, :-1] + np.cumsum(Y * Y, axis=1)[:, :-1]
            with np.errstate(divide="ignore"):
                return rule_grid(2.0 / np.sqrt(np.maximum(S, 0.0)))
        gap = np.cumsum(Zs, axis=1)[:, :-1] - k * Zs[:, 1:]
        with np.errstate(divide="ignore"):
            return rule_grid(1.0 / gap)

    @staticmethod
    def _edge_meaning(edge):
        return "every label in the support" if edge == "low" else "one label per row"

    def _loss_grad(self, Z, Q, Ybin):
        return _MAPPINGS[_check_loss(self.loss)][1](Z, Q, reduction="mean")

    def _labels_from_scores(self, Z, t):
        # The support of sparsemax or 1.5-entmax is never empty.
        return _MAPPINGS[_check_loss(self.loss)][0](t * Z) > 0

    def _proba(self, Z):
        return _MAPPINGS[_check_loss(self.loss)][0](Z)


class SoftmaxClassifier(_LinearMultilabel):
    """Linear multi-label baseline: softmax cross-entropy against the label proportions.

    Minimises ``mean_i -q_i . log softmax(W x_i + b) + alpha/2 ||W||^2``; ``predict_proba``
    gives ``softmax(z)``, ``predict`` the labels with probability above ``threshold_``
    (at least the most probable label).

    Parameters
    ----------
    alpha : float, optional
        L2 regularisation strength on ``W``.
    threshold : "cv" or float, optional
        Probability threshold; ``"cv"`` (default) tunes it by cross-validation (micro F1)
        among quantiles of the out-of-fold probabilities (see :func:`rule_grid`), so that
        thresholds far below 1/K are tried when rows carry many labels.
    cv, fit_intercept, max_iter, tol, random_state, warm_start
        As for :class:`SparsemaxClassifier`.

    Attributes
    ----------
    coef_, intercept_, classes_, n_iter_, n_fev_, rule_grid_, rule_at_edge_, cv_score_
        As for :class:`SparsemaxClassifier`.
    threshold_ : float
    """

    _cv_param = "threshold"

    def __init__(
        self, alpha=1e-3, *, threshold="cv", cv=3, fit_intercept=True, max_iter=1000, tol=1e-6,
        random_state=0, warm_start=False,
    ):
        self.alpha = alpha
        self.threshold = threshold
        self.cv = cv
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.warm_start = warm_start

    def _default_rule(self):
        return 0.5

    def _intercept0(self, Q, Ybin):
        # With W = 0 the gradient is softmax(b) - mean(q): b = log mean(q) where it is
        # positive; a label never seen gets a probability far below any other.
        lab = Ybin.any(axis=1)
        if not lab.any():
            return np.zeros(Q.shape[1])
        m = Q[lab].mean(axis=0)
        floor = np.min(m[m > 0]) * 1e-3
        return np.log(np.maximum(m, floor))

    def _rule_grid(self, Z):
        return rule_grid(_non_top(self._proba(Z)), upper=1.0)

    @staticmethod
    def _edge_meaning(edge):
        return "every label" if edge == "low" else "only the most probable label"

    def _loss_grad(self, Z, Q, Ybin):
        n = Z.shape[0]
        logp = _log_softmax(Z)
        # q log p with q = 0 contributes 0 (never 0 * -inf: logp is finite here).
        loss = -np.sum(Q * logp) / n
        return loss, (np.exp(logp) - Q) / n

    def _labels_from_scores(self, Z, thr):
        return _at_least_one(np.exp(_log_softmax(Z)) > thr, Z)

    def _proba(self, Z):
        return np.exp(_log_softmax(Z))


class LogisticClassifier(_LinearMultilabel):
    """Linear multi-label baseline: one L2-regularised logistic regression per label.

    Minimises ``mean_i sum_k BCE(sigmoid(z_ik), y_ik) + alpha/2 ||W||^2`` (the labels are the
    support of ``y``); ``predict`` gives the labels with probability above ``threshold_`` (at
    least the most probable label), ``predict_proba`` the label probabilities normalised to
    sum to 1 (the proportions used for the MSE and JS divergence; for class-label ``y`` the
    same normalisation gives class probabilities).

    Parameters
    ----------
    alpha : float, optional
        L2 regularisation strength on ``W``.
    threshold : "cv" or float, optional
        Probability threshold for each label; ``"cv"`` (default) tunes one threshold shared
        by all labels by cross-validation (micro F1), among quantiles of the out-of-fold
        probabilities (see :func:`rule_grid`).
    cv, fit_intercept, max_iter, tol, random_state, warm_start
        As for :class:`SparsemaxClassifier`.

    Attributes
    ----------
    coef_, intercept_, classes_, n_iter_, n_fev_, rule_grid_, rule_at_edge_, cv_score_
        As for :class:`SparsemaxClassifier`.
    threshold_ : float
    """

    _cv_param = "threshold"
    _skips_unlabelled = False

    def __init__(
        self, alpha=1e-3, *, threshold="cv", cv=3, fit_intercept=True, max_iter=1000, tol=1e-6,
        random_state=0, warm_start=False,
    ):
        self.alpha = alpha
        self.threshold = threshold
        self.cv = cv
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.warm_start = warm_start

    def _default_rule(self):
        return 0.5

    def _intercept0(self, Q, Ybin):
        # With W = 0 label k's gradient is sigmoid(b_k) - mean(y_k): b_k = logit(mean y_k),
        # clipped so that a label always (never) present gets a large finite intercept.
        m = np.clip(Ybin.mean(axis=0), 1e-6, 1 - 1e-6)
        return np.log(m) - np.log1p(-m)

    def _rule_grid(self, Z):
        return rule_grid(_non_top(_sigmoid(np.asarray(Z, dtype=np.float64))), upper=1.0)

    @staticmethod
    def _edge_meaning(edge):
        return "every label" if edge == "low" else "only the most probable label"

    def _loss_grad(self, Z, Q, Ybin):
        n = Z.shape[0]
        Yf = Ybin.astype(np.float64)
        # BCE = log(1 + e^z) - y z, with log(1 + e^z) = max(z, 0) + log1p(e^-|z|) (stable).
        loss = np.sum(np.maximum(Z, 0) + np.log1p(np.exp(-np.abs(Z))) - Yf * Z) / n
        return loss, (_sigmoid(Z) - Yf) / n

    def _labels_from_scores(self, Z, thr):
        return _at_least_one(_sigmoid(Z) > thr, Z)

    def _proba(self, Z):
        P = _sigmoid(Z)
        # Every sigmoid is > 0 in exact arithmetic; guard the sum against underflow.
        s = P.sum(axis=1, keepdims=True)
        return P / np.where(s > 0, s, 1.0)
