"""Every Python block of the README runs top to bottom as written, each on its own.

A block that imports an optional package (xarray, scikit-learn) skips when it is missing;
the GPU block runs under Numba's CUDA simulator, as the other GPU tests do.
"""

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
OPTIONAL = {"xarray": "xarray", "sparsemax_nb.multilabel": "sklearn"}


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_readme_block_runs(i):
    code = BLOCKS[i]
    for marker, module in OPTIONAL.items():
        if marker in code:
            pytest.importorskip(module)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, f"README.md block {i}", "exec"), {"__name__": "__readme__"})
    assert out.getvalue().strip(), "each block prints what it shows"
