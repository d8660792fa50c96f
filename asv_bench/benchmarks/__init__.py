"""airspeed velocity benchmarks for sparsemax_nb (``bench_cpu``: CPU kernels, ``bench_gpu``: CUDA).

Set ``SPARSEMAX_NB_ASV_TINY=1`` before importing a benchmark module to shrink every parameter
size to a few hundred elements: the test suite (``tests/test_benchmarks.py``) does this to run
every benchmark body once, so that the suite never rots.
"""
