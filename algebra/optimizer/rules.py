"""Which optimizer rules are in force."""

from __future__ import annotations

from ..config import OptimizerOptions, options

NO_OPTIMIZATION = OptimizerOptions(
    simplify=False, share_forward=False, fuse_targets=False, share_paths=False, chunk=False
)


def flags(optimize: bool = True) -> OptimizerOptions:
    """The optimizer rules in force: ``ia.options.optimizer``, or none when not ``optimize``.

    Examples
    --------
    >>> flags(optimize=False).fuse_targets, flags().fuse_targets
    (False, True)
    """
    return options.optimizer if optimize else NO_OPTIMIZATION
