"""Multi-label data: the paper's synthetic documents, a Mulan/MEKA ARFF loader, a fetcher for
the Mulan benchmark sets, and metrics.

Only NumPy and the standard library are needed here. The synthetic generator follows Martins & Astudillo (2016),
section 4.1: each document has a set of labels, proportions over those labels, and words
drawn from the mixture of the labels' word distributions; the target of the multi-label
model is the vector of mixture proportions.
"""

import hashlib
import os
import re
import tempfile
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections import namedtuple
from http.client import HTTPException

import numpy as np

__all__ = [
    "make_synthetic",
    "bag_of_words",
    "load_arff",
    "MultilabelDataset",
    "fetch_mulan",
    "get_data_home",
    "MulanSplits",
    "micro_f1",
    "macro_f1",
    "mean_squared_error",
    "js_divergence",
]

Split = namedtuple("Split", ["X", "Y", "Q", "counts"])
Split.__doc__ = """One split of the synthetic data.

X : (n, V) float64 bag-of-words features (see :func:`bag_of_words`).
Y : (n, K) int8 0/1 label indicators (the labels with non-zero proportion).
Q : (n, K) float64 mixture proportions, each row summing to 1 (the regression target).
counts : (n, V) int64 raw word counts.
"""

MultilabelDataset = namedtuple("MultilabelDataset", ["X", "Y", "feature_names", "label_names"])
MultilabelDataset.__doc__ = """A multi-label data set read from ARFF.

X : (n, d) float64 features. Y : (n, K) int8 0/1 labels. feature_names, label_names : lists.
"""


# --------------------------------------------------------------------------- synthetic data
def bag_of_words(counts, norm="l2"):
    """Bag-of-words features from word counts.

    Parameters
    ----------
    counts : array_like, shape (n, V)
        Non-negative word counts per document.
    norm : {"l2", "l1", "none"}, optional
        ``"l2"`` (default) scales each row to unit Euclidean norm, ``"l1"`` to relative
        frequencies, ``"none"`` keeps the counts. Normalising makes the features independent
        of document length, so one linear model serves short and long documents. An empty
        document gives a row of zeros.

    Returns
    -------
    numpy.ndarray of float64, shape (n, V)
    """
    c = np.asarray(counts, dtype=np.float64)
    if norm == "none":
        return c.copy()
    if norm == "l2":
        s = np.sqrt(np.einsum("ij,ij->i", c, c))
    elif norm == "l1":
        s = c.sum(axis=1)
    else:
        raise ValueError(f"norm must be 'l2', 'l1' or 'none'; got {norm!r}")
    s = np.where(s > 0, s, 1.0)  # an empty document stays a zero row, never NaN
    return c / s[:, None]


def make_synthetic(
    n_labels=10,
    doc_length=50,
    *,
    n_train=1200,
    n_dev=200,
    n_test=1000,
    vocab_size=1000,
    word_concentration=0.1,
    label_rate=1.0,
    norm="l2",
    seed=None,
):
    """The synthetic multi-label documents of Martins & Astudillo (2016), section 4.1.

    Generative process, per data set: each label ``k`` has a word distribution
    ``phi_k ~ Dirichlet(word_concentration * 1_V)``. Per document: the number of labels is
    ``Poisson(label_rate)`` clipped to ``[1, K]``; that many distinct labels are drawn
    uniformly; their proportions ``q`` are drawn from a flat Dirichlet over the chosen labels
    (zero elsewhere); the length is ``Poisson(doc_length)``; the word counts are
    ``Multinomial(length, sum_k q_k phi_k)`` (each word picks a label by ``q`` and then a word
    by that label's distribution).

    Parameters
    ----------
    n_labels : int, optional
        ``K``, the number of labels (the paper uses 10 and 50).
    doc_length : float, optional
        ``L``, the mean document length.
    n_train, n_dev, n_test : int, optional
        Split sizes (the paper's 1200, 200 and 1000 by default).
    vocab_size : int, optional
        ``V``, the number of word types (default 1000).
    word_concentration : float, optional
        Dirichlet concentration of the label word distributions (small: peaked, distinct
        labels).
    label_rate : float, optional
        Mean of the Poisson number of labels per document (the paper's 1).
    norm : {"l2", "l1", "none"}, optional
        Feature normalisation, see :func:`bag_of_words`.
    seed : int or numpy.random.Generator, optional
        Seed for reproducible data.

    Returns
    -------
    dict
        ``{"train": Split, "dev": Split, "test": Split, "word_dists": (K, V) array}``; each
        :data:`Split` holds ``X``, ``Y``, ``Q`` and the raw ``counts``.

    Examples
    --------
    >>> from sparsemax_nb.apps.datasets import make_synthetic
    >>> d = make_synthetic(n_labels=10, doc_length=20, seed=0)
    >>> d["train"].X.shape, d["train"].Q.shape
    ((1200, 1000), (1200, 10))
    """
    K = int(n_labels)
    if K < 1:
        raise ValueError(f"n_labels must be >= 1; got {n_labels}")
    if doc_length < 0 or vocab_size < 1:
        raise ValueError("doc_length must be >= 0 and vocab_size >= 1")
    rng = np.random.default_rng(seed)
    phi = rng.dirichlet(np.full(int(vocab_size), float(word_concentration)), size=K)

    def split(n):
        n = int(n)
        n_lab = np.clip(rng.poisson(label_rate, size=n), 1, K)
        Q = np.zeros((n, K))
        for i in range(n):
            chosen = rng.choice(K, size=n_lab[i], replace=False)
            Q[i, chosen] = rng.dirichlet(np.ones(n_lab[i]))
        # A flat Dirichlet can give a proportion that underflows to 0; keep the label set
        # and the proportions consistent by reading the labels off Q.
        Y = (Q > 0).astype(np.int8)
        lengths = rng.poisson(doc_length, size=n)
        mix = Q @ phi
        mix /= mix.sum(axis=1, keepdims=True)
        counts = rng.multinomial(lengths, mix)
        return Split(bag_of_words(counts, norm), Y, Q, counts)

    return {
        "train": split(n_train),
        "dev": split(n_dev),
        "test": split(n_test),
        "word_dists": phi,
    }


# --------------------------------------------------------------------------- metrics
def _binary_pair(y_true, y_pred):
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if t.shape != p.shape or t.ndim != 2:
        raise ValueError(f"expected two (n, K) label matrices; got {t.shape} and {p.shape}")
    return t != 0, p != 0


def micro_f1(y_true, y_pred):
    """Micro-averaged F1 of predicted label sets: ``2 TP / (2 TP + FP + FN)`` over all cells.

    Parameters
    ----------
    y_true, y_pred : array_like, shape (n, K)
        Label indicators (non-zero = label present), e.g. proportions and predictions.

    Returns
    -------
    float
        1.0 when both are empty everywhere.
    """
    t, p = _binary_pair(y_true, y_pred)
    tp = np.count_nonzero(t & p)
    denom = 2 * tp + np.count_nonzero(t ^ p)
    return 1.0 if denom == 0 else 2.0 * tp / denom


def macro_f1(y_true, y_pred, *, zero_division=0.0):
    """Macro-averaged F1: the mean over labels of each label's F1.

    Parameters
    ----------
    y_true, y_pred : array_like, shape (n, K)
        Label indicators (non-zero = label present).
    zero_division : float, optional
        F1 of a label that is neither present nor predicted anywhere (default 0, as
        scikit-learn).

    Returns
    -------
    float
    """
    t, p = _binary_pair(y_true, y_pred)
    tp = np.count_nonzero(t & p, axis=0)
    denom = 2 * tp + np.count_nonzero(t ^ p, axis=0)
    f = np.where(denom > 0, 2.0 * tp / np.maximum(denom, 1), zero_division)
    return float(np.mean(f)) if f.size else 0.0


def mean_squared_error(q_true, q_pred):
    """Squared error of predicted proportions: ``mean_i ||p_i - q_i||^2``.

    The squared distance is summed over labels and averaged over documents.

    Parameters
    ----------
    q_true, q_pred : array_like, shape (n, K)

    Returns
    -------
    float
    """
    a = np.asarray(q_true, dtype=np.float64)
    b = np.asarray(q_pred, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} and {b.shape}")
    return float(np.mean(np.sum((a - b) ** 2, axis=-1)))


def _kl_part(a, m):
    # 0 log 0 = 0; m > 0 wherever a > 0 because m = (a + b) / 2.
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sum(np.where(a > 0, a * np.log(np.where(a > 0, a, 1.0) / np.where(m > 0, m, 1.0)), 0.0), axis=-1)


def js_divergence(q_true, q_pred):
    """Jensen-Shannon divergence of proportions, averaged over documents (nats).

    ``JS(p, q) = 1/2 KL(p || m) + 1/2 KL(q || m)`` with ``m = (p + q) / 2``; finite even
    with exact zeros on either side, and at most ``log 2``.

    Parameters
    ----------
    q_true, q_pred : array_like, shape (n, K)
        Rows are distributions.

    Returns
    -------
    float
    """
    a = np.asarray(q_true, dtype=np.float64)
    b = np.asarray(q_pred, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} and {b.shape}")
    m = 0.5 * (a + b)
    return float(np.mean(0.5 * _kl_part(a, m) + 0.5 * _kl_part(b, m)))


# --------------------------------------------------------------------------- ARFF
def _unquote(tok):
    if len(tok) >= 2 and tok[0] == tok[-1] and tok[0] in "'\"":
        return re.sub(r"\\(.)", r"\1", tok[1:-1])
    return tok


def _split_values(line, where):
    """Split a dense data line on commas, honouring quotes."""
    out, cur, quote, i = [], [], None, 0
    while i < len(line):
        c = line[i]
        if quote:
            if c == "\\" and i + 1 < len(line):
                cur.append(line[i + 1])
                i += 2
                continue
            if c == quote:
                quote = None
            else:
                cur.append(c)
        elif c in "'\"":
            quote = c
        elif c == ",":
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    if quote:
        raise ValueError(f"{where}: unterminated quote")
    out.append("".join(cur).strip())
    return out


def _parse_attribute(rest, where):
    rest = rest.strip()
    if not rest:
        raise ValueError(f"{where}: @attribute without a name")
    if rest[0] in "'\"":
        q = rest[0]
        j = 1
        while j < len(rest) and not (rest[j] == q and rest[j - 1] != "\\"):
            j += 1
        if j >= len(rest):
            raise ValueError(f"{where}: unterminated quoted attribute name")
        name, typ = _unquote(rest[: j + 1]), rest[j + 1 :].strip()
    else:
        parts = rest.split(None, 1)
        if len(parts) < 2:
            raise ValueError(f"{where}: @attribute {rest!r} has no type")
        name, typ = parts
    if not typ:
        raise ValueError(f"{where}: @attribute {name!r} has no type")
    if typ.startswith("{"):
        if not typ.endswith("}"):
            raise ValueError(f"{where}: nominal type of {name!r} is not closed by '}}'")
        values = [_unquote(v) for v in _split_values(typ[1:-1], where)]
        return name, values
    low = typ.lower()
    if low in ("numeric", "real", "integer"):
        return name, None
    raise ValueError(
        f"{where}: attribute {name!r} has type {typ!r}; only numeric and nominal are supported"
    )


def _value(tok, kind, name, where):
    tok = _unquote(tok.strip())
    if tok == "?":
        return np.nan
    if kind is None:
        try:
            return float(tok)
        except ValueError:
            raise ValueError(f"{where}: {tok!r} is not a number (attribute {name!r})") from None
    if tok in kind:
        # Nominal values that are numbers ({0,1} labels) keep their number; others their index.
        try:
            return float(tok)
        except ValueError:
            return float(kind.index(tok))
    else:
        raise ValueError(
            f"{where}: {tok!r} is not one of the values {kind} of attribute {name!r}"
        ) from None


def _is_binary_nominal(kind):
    return kind is not None and sorted(kind) == ["0", "1"]


def _mulan_labels(xml_path):
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as e:
        raise ValueError(f"{xml_path}: not a valid Mulan XML label file ({e})") from None
    names = [el.get("name") for el in root.iter() if el.tag.split("}")[-1] == "label"]
    if not names or any(n is None for n in names):
        raise ValueError(f"{xml_path}: no <label name=...> elements")
    return names


def load_arff(path, labels=None, *, xml=None, labels_first=None):
    """Read a Mulan or MEKA multi-label data set from an ARFF file (dense or sparse).

    Parameters
    ----------
    path : str or os.PathLike
        The ``.arff`` file (Scene, Emotions, Birds, CAL500, ...).
    labels : int or "auto", optional
        The number of label attributes. If not given, it is read from ``xml`` or from a MEKA
        header (``@relation 'name: -C N'``; ``N > 0``: the first ``N`` attributes,
        ``N < 0``: the last ``|N|``). ``"auto"``: the MEKA header when there is one, else
        the trailing run of ``{0,1}`` nominal attributes (Mulan puts its labels last; a
        binary feature just before them would be taken for a label, so prefer ``xml``
        when there is one).
    xml : str or os.PathLike, optional
        A Mulan XML file naming the labels (``<label name="..."/>``); the labels are the
        attributes with those names, wherever they are.
    labels_first : bool, optional
        With ``labels`` given, whether the labels are the first attributes (MEKA) rather than
        the last (Mulan, the default).

    Returns
    -------
    MultilabelDataset
        ``(X, Y, feature_names, label_names)``: ``X`` float64 features (nominal features as
        their value index, missing ``?`` as NaN), ``Y`` int8 0/1 labels.

    Raises
    ------
    ValueError
        For a malformed file (naming the line), an unsupported attribute type, an
        unknown label count, a label that is not binary or is missing.
    """
    where0 = str(path)
    attrs = []
    relation = None
    rows = []
    in_data = False
    with open(path, encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, 1):
            where = f"{where0}, line {lineno}"
            line = raw.strip()
            if not line or line.startswith("%"):
                continue
            if not in_data:
                low = line.lower()
                if low.startswith("@relation"):
                    relation = _unquote(line[len("@relation") :].strip())
                elif low.startswith("@attribute"):
                    attrs.append(_parse_attribute(line[len("@attribute") :], where))
                elif low.startswith("@data"):
                    if not attrs:
                        raise ValueError(f"{where}: @data before any @attribute")
                    in_data = True
                    n_attr = len(attrs)
                else:
                    raise ValueError(f"{where}: unexpected header line {line[:40]!r}")
                continue
            row = np.zeros(n_attr)
            if line.startswith("{"):
                if not line.endswith("}"):
                    raise ValueError(f"{where}: sparse row not closed by '}}'")
                body = line[1:-1].strip()
                if body:
                    for item in _split_values(body, where):
                        parts = item.split(None, 1)
                        if len(parts) != 2:
                            raise ValueError(f"{where}: sparse entry {item!r} is not 'index value'")
                        try:
                            j = int(parts[0])
                        except ValueError:
                            raise ValueError(f"{where}: sparse index {parts[0]!r} is not an integer") from None
                        if not 0 <= j < n_attr:
                            raise ValueError(f"{where}: sparse index {j} out of range 0..{n_attr - 1}")
                        row[j] = _value(parts[1], attrs[j][1], attrs[j][0], where)
                # ARFF sparse rows omit zeros; for nominal attributes "0" means the first value.
            else:
                vals = _split_values(line, where)
                if len(vals) != n_attr:
                    raise ValueError(f"{where}: {len(vals)} values, {n_attr} attributes declared")
                for j, v in enumerate(vals):
                    row[j] = _value(v, attrs[j][1], attrs[j][0], where)
            rows.append(row)
    if not in_data:
        raise ValueError(f"{where0}: no @data section")
    names = [a[0] for a in attrs]
    data = np.array(rows, dtype=np.float64).reshape(len(rows), len(attrs))

    if xml is not None:
        label_names = _mulan_labels(xml)
        missing = [n for n in label_names if n not in names]
        if missing:
            raise ValueError(f"{where0}: labels {missing[:5]} of {xml} are not attributes")
        lab_idx = [names.index(n) for n in label_names]
    else:
        m = re.search(r"-C\s+(-?\d+)", relation or "")
        if isinstance(labels, str):
            if labels != "auto":
                raise ValueError(f"labels must be an int, None or 'auto'; got {labels!r}")
            if m:
                labels = None  # the MEKA header below
            else:
                c = 0
                while c < len(attrs) and _is_binary_nominal(attrs[len(attrs) - 1 - c][1]):
                    c += 1
                if c == 0:
                    raise ValueError(
                        f"{where0}: no label attributes found (the last attribute is not "
                        "{0,1}); pass labels=N or a Mulan xml= file"
                    )
                if c == len(attrs):
                    raise ValueError(
                        f"{where0}: every attribute is {{0,1}}; pass labels=N or a Mulan xml= file"
                    )
                labels, labels_first = c, False
        if labels is None:
            if not m:
                raise ValueError(
                    f"{where0}: the number of labels is unknown; pass labels=N or a Mulan "
                    "xml= file (or use a MEKA header '@relation \"name: -C N\"')"
                )
            c = int(m.group(1))
            first = c > 0
            c = abs(c)
        else:
            c = int(labels)
            first = bool(labels_first)
        if not 1 <= c < len(attrs):
            raise ValueError(f"{where0}: {c} labels for {len(attrs)} attributes")
        lab_idx = list(range(c)) if first else list(range(len(attrs) - c, len(attrs)))
    feat_idx = [j for j in range(len(attrs)) if j not in set(lab_idx)]
    Y = data[:, lab_idx]
    if np.isnan(Y).any():
        raise ValueError(f"{where0}: a label value is missing ('?')")
    if not np.isin(Y, (0.0, 1.0)).all():
        raise ValueError(f"{where0}: label values must be 0 or 1")
    return MultilabelDataset(
        data[:, feat_idx],
        Y.astype(np.int8),
        [names[j] for j in feat_idx],
        [names[j] for j in lab_idx],
    )


# --------------------------------------------------------------------------- Mulan fetcher
MulanSplits = namedtuple("MulanSplits", ["train", "test", "name", "files"])
MulanSplits.__doc__ = """A Mulan benchmark set with its own train/test split.

train, test : MultilabelDataset. name : str. files : dict of file name -> local path.
"""

# Mulan's repository (tsoumakas/mulan on GitHub): data/multi-label/<set>/<file>.
MULAN_URLS = (
    "https://raw.githubusercontent.com/tsoumakas/mulan/master/data/multi-label/{name}/{file}",
)

# sha256 of the files as published there; a download must match exactly.
MULAN_SETS = {
    "scene": {
        "scene-train.arff": "b53ba93bdf412de922e3960389bcee24744fa3e872ce610511fc1d750888b64d",
        "scene-test.arff": "ea38d20296b3ff7e220f477a3b802a9bcb2d768881fe6ee163efbc97ea527a42",
        "scene.xml": "55d8b247b949ad5c52e5a73d8c6775ec6e5469ce9682465b45b333b68ee4bcc5",
    },
    "emotions": {
        "emotions-train.arff": "bbe704106c79bb8fb99c1d1d2e9bde081d6a2daeb01f100862f11fd91a3c1f98",
        "emotions-test.arff": "f13d4b746b7b5c8eb484bd751d6ac463d4560dff998a93516a5c1fe35daf6c8f",
        "emotions.xml": "dbce8e6ccbbb2fcbfd9e9edbb230d7ed12692c6e13f59fdbc0161fa9b6cf2dc0",
    },
    "birds": {
        "birds-train.arff": "8f215db6ee163149901e753977f631ba8bea0e0e8e1abc42b234414822f8ae36",
        "birds-test.arff": "51ba6326d65ccdd7c755b6461280eb6d2769c7f59d8e12fd4250f91e6ca28326",
        "birds.xml": "0f4ea547b2b3d538c8402662daf689e0d4520cc8b4f5ba113c2e7c01700f010f",
    },
}

DATA_ENV = "SPARSEMAX_NB_DATA"


def get_data_home(data_home=None):
    """The directory where fetched data sets are cached (created if missing).

    Parameters
    ----------
    data_home : str or os.PathLike, optional
        Use this directory. Otherwise the environment variable ``SPARSEMAX_NB_DATA``, else
        ``$XDG_CACHE_HOME/sparsemax_nb`` (``~/.cache/sparsemax_nb``).

    Returns
    -------
    str
    """
    if data_home is None:
        data_home = os.environ.get(DATA_ENV) or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
            "sparsemax_nb",
        )
    data_home = os.path.expanduser(os.fspath(data_home))
    os.makedirs(data_home, exist_ok=True)
    return data_home


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download(urls, dest, sha256, timeout=30.0):
    """Fetch ``dest`` from the first of ``urls`` that serves bytes with the given sha256.

    The bytes go to a temporary file beside ``dest``, renamed over it only once complete
    and verified, so an interrupted or corrupt download never leaves a file under the final
    name. Returns the URL used; raises ``OSError`` listing every failure.
    """
    failures = []
    directory = os.path.dirname(os.path.abspath(dest))
    for url in urls:
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(dest) + ".", suffix=".part", dir=directory)
        try:
            h = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                for block in iter(lambda: resp.read(1 << 16), b""):
                    h.update(block)
                    out.write(block)
            got = h.hexdigest()
            if got != sha256:
                failures.append(f"{url}: sha256 {got[:16]}... is not the expected {sha256[:16]}...")
                continue
            os.replace(tmp, dest)
            tmp = None
            return url
        except (OSError, HTTPException, ValueError) as e:
            # URLError and timeouts are OSErrors; a connection cut mid-body is an
            # IncompleteRead (HTTPException); a malformed URL is a ValueError.
            failures.append(f"{url}: {e}")
        finally:
            if tmp is not None and os.path.exists(tmp):
                os.remove(tmp)
    raise OSError(
        f"could not download {os.path.basename(dest)}: "
        + "; ".join(failures)
        + ". If this machine is offline, copy the file into "
        + f"{directory} (or set {DATA_ENV} to a directory holding it), or pass urls= a mirror."
    )


def fetch_mulan(name, *, data_home=None, urls=None, download_if_missing=True, timeout=30.0):
    """Load a Mulan multi-label benchmark set with its train/test split, downloading it once.

    As scikit-learn's ``fetch_*`` functions: the files are cached in
    ``get_data_home(data_home)/mulan/<name>/``, checked against a pinned sha256 (a cached
    file that does not match is downloaded again), and a download is written to a temporary
    file and renamed only when complete and verified.

    Parameters
    ----------
    name : {"scene", "emotions", "birds"}
        The data set (the small sets of Martins & Astudillo 2016, section 4.1).
    data_home : str or os.PathLike, optional
        Cache directory (default: see :func:`get_data_home`; the environment variable
        ``SPARSEMAX_NB_DATA`` overrides it).
    urls : sequence of str, optional
        URL templates tried in order, with ``{name}`` and ``{file}`` fields (default: the
        Mulan repository on GitHub, :data:`MULAN_URLS`). ``file://`` URLs work too.
    download_if_missing : bool, optional
        If False, raise ``OSError`` when a file is not in the cache.
    timeout : float, optional
        Seconds to wait on each connection.

    Returns
    -------
    MulanSplits
        ``(train, test, name, files)``: the two splits as :class:`MultilabelDataset`, with
        the labels named by the set's Mulan XML file.

    Raises
    ------
    ValueError
        For an unknown ``name``.
    OSError
        When a file is missing and cannot be downloaded (offline, no mirror serves the
        expected bytes); the message names every URL tried and why it failed.

    Examples
    --------
    >>> from sparsemax_nb.apps.datasets import fetch_mulan
    >>> scene = fetch_mulan("scene")  # doctest: +SKIP
    >>> scene.train.X.shape, scene.test.Y.shape  # doctest: +SKIP
    ((1211, 294), (1196, 6))
    """
    key = str(name).lower()
    if key not in MULAN_SETS:
        raise ValueError(f"unknown Mulan set {name!r}; known: {', '.join(sorted(MULAN_SETS))}")
    templates = tuple(MULAN_URLS if urls is None else urls)
    if isinstance(urls, str) or not templates:
        raise ValueError("urls must be a non-empty sequence of URL templates")
    directory = os.path.join(get_data_home(data_home), "mulan", key)
    os.makedirs(directory, exist_ok=True)
    files = {}
    for fname, sha in MULAN_SETS[key].items():
        path = os.path.join(directory, fname)
        if not (os.path.exists(path) and _sha256(path) == sha):
            if not download_if_missing:
                raise OSError(
                    f"{fname} of Mulan set {key!r} is not in {directory} (or does not match its "
                    "sha256) and download_if_missing is False"
                )
            _download([t.format(name=key, file=fname) for t in templates], path, sha, timeout)
        files[fname] = path
    xml = files[f"{key}.xml"]
    return MulanSplits(
        load_arff(files[f"{key}-train.arff"], xml=xml),
        load_arff(files[f"{key}-test.arff"], xml=xml),
        key,
        files,
    )
