"""The one home of benchmark cases: the ``sparsemax-nb bench`` command (:mod:`.cpu`, with
the GPU section in :mod:`.gpu`), NumPy reference implementations, and the cases the asv
suite in ``asv_bench/`` imports."""
