"""Throughput benchmarks: ialgebra ("ours") against Captum's sequential calls and a floor.

Run ``python -m benchmarks --help`` (or ``make bench``); see ``benchmarks/README.md``.
"""
