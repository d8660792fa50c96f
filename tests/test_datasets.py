"""Synthetic data generator, ARFF loader and multi-label metrics."""

import numpy as np
import pytest

from sparsemax_nb.apps.datasets import (
    bag_of_words,
    js_divergence,
    load_arff,
    macro_f1,
    make_synthetic,
    mean_squared_error,
    micro_f1,
)


def test_synthetic_shapes_and_invariants():
    d = make_synthetic(10, 30, n_train=120, n_dev=20, n_test=50, vocab_size=200, seed=0)
    tr = d["train"]
    assert tr.X.shape == (120, 200) and tr.Y.shape == (120, 10) and tr.Q.shape == (120, 10)
    assert d["dev"].X.shape[0] == 20 and d["test"].X.shape[0] == 50
    np.testing.assert_allclose(tr.Q.sum(1), 1.0)
    assert ((tr.Y == 1) == (tr.Q > 0)).all()
    assert (tr.Y.sum(1) >= 1).all() and (tr.Y.sum(1) <= 10).all()
    # l2-normalised bag of words of the counts
    norms = np.linalg.norm(tr.X, axis=1)
    np.testing.assert_allclose(norms[tr.counts.sum(1) > 0], 1.0)
    assert abs(tr.counts.sum(1).mean() - 30) < 3
    assert d["word_dists"].shape == (10, 200)


def test_synthetic_default_sizes_and_seed():
    a = make_synthetic(50, 20, vocab_size=50, seed=3)
    b = make_synthetic(50, 20, vocab_size=50, seed=3)
    assert a["train"].X.shape[0] == 1200 and a["dev"].X.shape[0] == 200 and a["test"].X.shape[0] == 1000
    np.testing.assert_array_equal(a["test"].counts, b["test"].counts)
    c = make_synthetic(50, 20, vocab_size=50, seed=4)
    assert not np.array_equal(a["test"].counts, c["test"].counts)
    # Poisson(1) labels clipped to [1, K]: mean a little above 1
    assert 1.2 < a["train"].Y.sum(1).mean() < 1.6


def test_bag_of_words_norms():
    c = np.array([[1, 1, 0], [0, 0, 0], [3, 0, 4]])
    np.testing.assert_allclose(bag_of_words(c, "l1")[0], [0.5, 0.5, 0])
    np.testing.assert_allclose(bag_of_words(c, "l2")[2], [0.6, 0, 0.8])
    assert (bag_of_words(c)[1] == 0).all()
    with pytest.raises(ValueError):
        bag_of_words(c, "max")


def test_metrics():
    t = np.array([[1, 0, 1], [0, 1, 0]])
    p = np.array([[1, 1, 0], [0, 1, 0]])
    # TP = 2, FP = 1, FN = 1
    assert micro_f1(t, p) == pytest.approx(4 / 6)
    # per label F1: 1, 2/3, 0
    assert macro_f1(t, p) == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert micro_f1(t, t) == 1.0 and macro_f1(t, t) == 1.0
    q = np.array([[0.5, 0.0, 0.5], [0.0, 1.0, 0.0]])
    r = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert mean_squared_error(q, r) == pytest.approx((0.25 + 0.25) / 2)
    # JS of (1/2, 1/2) and (1, 0): 1/2 KL(q||m) + 1/2 KL(r||m), m = (3/4, 1/4)
    js0 = 0.5 * (0.5 * np.log(0.5 / 0.75) + 0.5 * np.log(0.5 / 0.25)) + 0.5 * np.log(1 / 0.75)
    assert js_divergence(q, r) == pytest.approx(js0 / 2)
    assert js_divergence(q, q) == 0.0
    assert js_divergence(np.array([[1.0, 0]]), np.array([[0, 1.0]])) == pytest.approx(np.log(2))
    with pytest.raises(ValueError):
        micro_f1(t, p[:1])


DENSE = """% a comment
@relation 'toy: -C -2'
@attribute f1 numeric
@attribute 'f two' real
@attribute colour {red,green}
@attribute l1 {0,1}
@attribute l2 {0,1}
@data
1.5,2,red,1,0
-1,0.25,green,0,1
?,3,'green',1,1
"""

SPARSE = """@relation 'toy2: -C 2'
@attribute a {0,1}
@attribute b {0,1}
@attribute x numeric
@attribute y numeric
@data
{0 1,3 2.5}
{1 1,2 -1}
{}
"""


def test_arff_dense(tmp_path):
    f = tmp_path / "toy.arff"
    f.write_text(DENSE)
    d = load_arff(f)  # MEKA -C -2: last two attributes are labels
    assert d.feature_names == ["f1", "f two", "colour"] and d.label_names == ["l1", "l2"]
    np.testing.assert_array_equal(d.Y, [[1, 0], [0, 1], [1, 1]])
    assert d.Y.dtype == np.int8
    np.testing.assert_array_equal(d.X[:2], [[1.5, 2, 0], [-1, 0.25, 1]])
    assert np.isnan(d.X[2, 0]) and d.X[2, 2] == 1
    d2 = load_arff(f, 2)
    np.testing.assert_array_equal(d2.Y, d.Y)


def test_arff_sparse_and_labels_first(tmp_path):
    f = tmp_path / "toy2.arff"
    f.write_text(SPARSE)
    d = load_arff(f)  # -C 2: the first two attributes
    assert d.label_names == ["a", "b"]
    np.testing.assert_array_equal(d.Y, [[1, 0], [0, 1], [0, 0]])
    np.testing.assert_array_equal(d.X, [[0, 2.5], [-1, 0], [0, 0]])
    d2 = load_arff(f, 2, labels_first=True)
    np.testing.assert_array_equal(d2.X, d.X)


def test_arff_mulan_xml(tmp_path):
    f = tmp_path / "toy.arff"
    f.write_text(DENSE.replace("'toy: -C -2'", "toy"))
    x = tmp_path / "toy.xml"
    x.write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<labels xmlns="http://mulan.sourceforge.net/labels">'
        '<label name="l2"></label><label name="l1"></label></labels>'
    )
    d = load_arff(f, xml=x)
    assert d.label_names == ["l2", "l1"]
    np.testing.assert_array_equal(d.Y, [[0, 1], [1, 0], [1, 1]])
    with pytest.raises(ValueError, match="number of labels is unknown"):
        load_arff(f)


@pytest.mark.parametrize(
    "text,match",
    [
        ("@relation r\n@attribute a numeric\n@attribute b {0,1}\n@data\n1,0,3\n", "3 values"),
        ("@relation r\n@attribute a numeric\n@attribute b {0,1}\n@data\nx,1\n", "not a number"),
        ("@relation r\n@attribute a numeric\n@attribute b {0,1}\n@data\n1,2\n", "not one of"),
        ("@relation r\n@attribute a string\n@attribute b {0,1}\n@data\n", "only numeric"),
        ("@relation r\n@attribute a numeric\n@attribute b {0,1}\n", "no @data"),
        ("@relation r\n@attribute a numeric\n@attribute b {0,1}\n@data\n{5 1}\n", "out of range"),
        ("@relation r\n@attribute a numeric\n@attribute b {0,1}\n@data\n{0 1\n", "not closed"),
        ("@relation r\n@attribute a numeric\n@attribute b {0,1\n@data\n", "not closed"),
        ("@relation r\nhello\n@data\n", "unexpected header"),
        ("@relation r\n@attribute a numeric\n@attribute b numeric\n@data\n1,2\n", "0 or 1"),
        ("@relation r\n@attribute a numeric\n@attribute b {0,1}\n@data\n1,?\n", "missing"),
    ],
)
def test_arff_malformed(tmp_path, text, match):
    f = tmp_path / "bad.arff"
    f.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_arff(f, 1)


def test_arff_auto_labels(tmp_path):
    f = tmp_path / "toy.arff"
    f.write_text(DENSE.replace("'toy: -C -2'", "toy"))
    d = load_arff(f, "auto")  # the trailing {0,1} attributes
    assert d.label_names == ["l1", "l2"] and d.feature_names == ["f1", "f two", "colour"]
    g = tmp_path / "toy2.arff"
    g.write_text(SPARSE)
    assert load_arff(g, "auto").label_names == ["a", "b"]  # a MEKA header wins
    h = tmp_path / "bad.arff"
    h.write_text("@relation r\n@attribute a {0,1}\n@attribute b numeric\n@data\n1,2\n")
    with pytest.raises(ValueError, match="no label attributes found"):
        load_arff(h, "auto")
    h.write_text("@relation r\n@attribute a {0,1}\n@attribute b {1,0}\n@data\n1,0\n")
    with pytest.raises(ValueError, match="every attribute is"):
        load_arff(h, "auto")
    with pytest.raises(ValueError, match="'auto'"):
        load_arff(f, "all")


# --------------------------------------------------------------------------- fetch_mulan
import contextlib  # noqa: E402
import functools  # noqa: E402
import hashlib  # noqa: E402
import http.server  # noqa: E402
import os  # noqa: E402
import pathlib  # noqa: E402
import threading  # noqa: E402

from sparsemax_nb.apps import datasets as D  # noqa: E402

TOY = pathlib.Path(__file__).parent / "data" / "mulan_toy"
# <repo>/../shared, or SPARSEMAX_NB_SHARED_DIR; tests that need it skip when it is absent.
SHARED = pathlib.Path(
    os.environ.get("SPARSEMAX_NB_SHARED_DIR") or pathlib.Path(__file__).resolve().parents[1].parent / "shared"
) / "data" / "mulan"
needs_shared = pytest.mark.skipif(
    not (SHARED / "scene-train.arff").exists(), reason="no <repo>/../shared/data/mulan"
)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


class _Truncating(http.server.BaseHTTPRequestHandler):
    """Promises 100,000 bytes, sends 10 and hangs up (a connection cut mid-download)."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        self.wfile.write(b"0123456789")
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *a):
        pass


@contextlib.contextmanager
def _serve(handler):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def _closed_port_url():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return f"http://127.0.0.1:{port}"


def _sha(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def test_download_verifies_and_renames(tmp_path):
    src = TOY / "toy.xml"
    dest = tmp_path / "toy.xml"
    with _serve(functools.partial(_Quiet, directory=str(TOY))) as base:
        used = D._download([f"{base}/missing.xml", f"{base}/toy.xml"], str(dest), _sha(src))
        assert used.endswith("/toy.xml")  # the first mirror 404s, the second serves it
        assert dest.read_bytes() == src.read_bytes()
        with pytest.raises(OSError, match="sha256"):
            D._download([f"{base}/toy-test.arff"], str(tmp_path / "other"), _sha(src))
    assert sorted(os.listdir(tmp_path)) == ["toy.xml"]  # no partial or temporary file


def test_download_cut_mid_body_leaves_nothing(tmp_path):
    with _serve(_Truncating) as base:
        with pytest.raises(OSError, match="could not download x.arff"):
            D._download([f"{base}/x.arff"], str(tmp_path / "x.arff"), "0" * 64)
    assert os.listdir(tmp_path) == []


def test_download_offline_is_a_clear_error(tmp_path):
    with pytest.raises(OSError, match="offline") as e:
        D._download([f"{_closed_port_url()}/x.arff"], str(tmp_path / "x.arff"), "0" * 64)
    assert "127.0.0.1" in str(e.value)
    assert os.listdir(tmp_path) == []


def test_data_home_env_override(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSEMAX_NB_DATA", str(tmp_path / "cache"))
    assert D.get_data_home() == str(tmp_path / "cache") and (tmp_path / "cache").is_dir()
    assert D.get_data_home(tmp_path / "x") == str(tmp_path / "x")


def test_fetch_mulan_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown Mulan set"):
        D.fetch_mulan("yeast", data_home=tmp_path)
    with pytest.raises(ValueError, match="urls"):
        D.fetch_mulan("scene", data_home=tmp_path, urls="http://example.org/{file}")
    with pytest.raises(OSError, match="download_if_missing is False"):
        D.fetch_mulan("scene", data_home=tmp_path, download_if_missing=False)


def test_fetch_mulan_offline_leaves_no_file(tmp_path):
    with pytest.raises(OSError, match="could not download scene-train.arff"):
        D.fetch_mulan("scene", data_home=tmp_path, urls=[_closed_port_url() + "/{file}"], timeout=5)
    left = [p for p in (tmp_path / "mulan" / "scene").iterdir()]
    assert left == []


@needs_shared
@pytest.mark.parametrize("name,shape", [("scene", (1211, 1196, 294, 6)), ("birds", (322, 323, 260, 19))])
def test_fetch_mulan_from_a_local_server(tmp_path, monkeypatch, name, shape):
    monkeypatch.setenv("SPARSEMAX_NB_DATA", str(tmp_path))
    with _serve(functools.partial(_Quiet, directory=str(SHARED))) as base:
        ds = D.fetch_mulan(name, urls=[base + "/{file}"])
    assert (ds.train.X.shape[0], ds.test.X.shape[0], ds.train.X.shape[1], ds.train.Y.shape[1]) == shape
    assert ds.train.label_names == D._mulan_labels(SHARED / f"{name}.xml")
    for fname, path in ds.files.items():
        assert pathlib.Path(path).parent == tmp_path / "mulan" / name
        assert _sha(path) == D.MULAN_SETS[name][fname]
    # cached: no server needed any more
    again = D.fetch_mulan(name, urls=[_closed_port_url() + "/{file}"])
    np.testing.assert_array_equal(again.test.Y, ds.test.Y)
    # a damaged cached file is downloaded again, not trusted
    p = pathlib.Path(ds.files[f"{name}-test.arff"])
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(OSError, match="could not download"):
        D.fetch_mulan(name, urls=[_closed_port_url() + "/{file}"])
    with _serve(functools.partial(_Quiet, directory=str(SHARED))) as base:
        D.fetch_mulan(name, urls=[base + "/{file}"])
    assert _sha(p) == D.MULAN_SETS[name][f"{name}-test.arff"]


@needs_shared
def test_fetch_mulan_file_url_mirror(tmp_path):
    ds = D.fetch_mulan("emotions", data_home=tmp_path, urls=[SHARED.as_uri() + "/{file}"])
    assert ds.train.X.shape == (391, 72) and ds.test.Y.shape == (202, 6)
