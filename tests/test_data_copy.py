"""The test data copied into the repository match their source beside the checkout.

``tests/data/vectors.json`` is a copy of the project's shared test vectors, so a user's
clone runs the whole suite on its own. Where the shared folder is present (developers and
CI have it at ``<repo>/../shared``), the copy must not have drifted from it; elsewhere
this test skips.
"""

import json
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"


def test_vectors_copy_matches_its_source():
    source = SHARED / "vectors.json"
    if not source.exists():
        pytest.skip("no ../shared beside this checkout (a user's clone)")
    with open(source) as f, open(HERE / "data" / "vectors.json") as g:
        assert json.load(f) == json.load(g)
