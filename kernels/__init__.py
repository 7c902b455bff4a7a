"""The physical layer of ialgebra, installed as ``algebra.kernels``.

Kernels execute a physical plan (:mod:`algebra.kernels.plan`): batched forward and
backward passes on the model's device. They know nothing of expression nodes or queries.
"""
