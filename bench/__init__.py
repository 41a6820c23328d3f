"""`labelgate bench`: side-by-side benchmarks against real servers the benchmark starts itself.

Every figure is a ratio of two things measured interleaved in one run (medians over rounds), so
it holds on a shared, noisy machine; absolute times are reported only from a GPU.
"""
