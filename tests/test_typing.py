"""The package is typed (PEP 561): py.typed ships, and mypy checks a user's calls."""

import os
import textwrap

import pytest

import sparsemax_nb


def test_py_typed_marker():
    assert os.path.exists(os.path.join(os.path.dirname(sparsemax_nb.__file__), "py.typed"))


@pytest.mark.slow
def test_mypy_on_user_code(tmp_path):
    api = pytest.importorskip("mypy.api")
    snippet = tmp_path / "user.py"
    snippet.write_text(
        textwrap.dedent(
            """
            import numpy as np
            import sparsemax_nb as sm
            from sparsemax_nb import gufuncs

            z = np.zeros((3, 4), np.float32)
            p = sm.sparsemax(z, axis=-1, method="sort")
            reveal_type(p)
            tau, k = sm.sparsemax_threshold(z)
            g = sm.sparsemax_jvp(p, z)
            u: np.ufunc = gufuncs.sparsemax
            sm.sparsemax(z, axis="last")
            """
        )
    )
    out, err, status = api.run(
        ["--follow-imports=silent", "--ignore-missing-imports", "--no-incremental",
         "--cache-dir", os.devnull, str(snippet)]
    )
    lines = [line for line in out.splitlines() if "user.py" in line]
    errors = [line for line in lines if ": error:" in line]
    # Exactly the one bad call is flagged: axis must be an int.
    assert len(errors) == 1 and ":12:" in errors[0] and "axis" in errors[0], out
    assert any("Revealed type" in line and "ndarray" in line for line in lines), out
