"""Applications built on the public API: sparse attention, multi-label classifiers and
their data sets and metrics."""
