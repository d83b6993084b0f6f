"""The benchmark suite: `python -m benchmarks [--quick] [--only NAME]` (behind `make bench`).

Every comparison runs side by side in one process on the same data, so ratios hold on a noisy
machine; every figure is measured in the run that prints it.
"""
