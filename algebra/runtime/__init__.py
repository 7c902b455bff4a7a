"""The runtime: runs an optimized plan and hands labelled frames to the results layer.

``graph`` (the one walk of a computation's graph), ``compute`` (tensors checked, memo
consulted, plan run), ``jobs`` and ``evaluate`` (kernel jobs, then the algebra over their
frames), ``memo`` and ``session`` (reuse between calls), ``explain`` (the plan as text),
``metrics`` and ``neurons`` (evaluation metrics, NeuroInspect's phases), and the dask
executor: ``sources`` (lazy inputs), ``partition`` (the sample axis cut into chunks),
``chunks`` (one chunk, where dask runs it), ``reductions`` (partial sums over chunks) and
``distributed`` (the task graph).
"""
