"""Stratum's benchmarks: scripts that print figures next to a baseline measured in the
same run (not tests; nothing here asserts a time). Run them all with
``python -m benchmarks [--quick]``; see :mod:`benchmarks.__main__`."""
