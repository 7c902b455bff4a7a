"""The gradient family's point sets in plain data (no torch): what each one evaluates.

A :class:`~algebra.kernels.plan.Points` of kind ``paired``, ``shap``, ``masks`` or
``conductance`` carries one of these as its ``spec``; a job with a :class:`NoiseSpec`
runs every group on noisy copies of its inputs. Each spec has a ``key`` (equal specs are
one point set: one forward, one batched backward) and ``rows_per_sample``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class NoiseSpec:
    """``samples`` noisy copies of the inputs (SmoothGrad, NoiseTunnel).

    Gaussian noise of standard deviation ``stdev`` (times each sample's value range when
    ``relative``), drawn from a CPU generator seeded with ``seed`` (torch's global RNG
    without one), or the given draws ``noise`` (``[S, N, ...]`` or ``[S, ...]``).

    Examples
    --------
    >>> NoiseSpec(8, 0.1, key="noise-1").samples
    8
    """

    samples: int
    stdev: float
    relative: bool = True
    seed: int | None = None
    noise: Any = None
    key: str = ""


@dataclass(frozen=True)
class PairedSpec:
    """DeepLift's batch ``[x; x0]``: each input with its reference (the point set's
    ``path.baseline``), or, with ``baselines = B > 0``, each input against each of ``B``
    references (DeepLiftShap; rows of pairs ``n * B + b``).

    Examples
    --------
    >>> PairedSpec().rows_per_sample, PairedSpec(baselines=3).rows_per_sample
    (2, 6)
    """

    baselines: int = 0

    @property
    def pairs_per_sample(self) -> int:
        """Pairs (input, reference) per input sample."""
        return max(1, self.baselines)

    @property
    def rows_per_sample(self) -> int:
        """Rows evaluated per input sample: two per pair."""
        return 2 * self.pairs_per_sample

    @property
    def key(self) -> str:
        """Equal for paired sets one forward can serve."""
        return f"paired:{self.baselines}"


@dataclass(frozen=True)
class ShapSpec:
    """GradientSHAP's random points: ``samples`` draws per input of a baseline among
    ``baselines`` (a tensor ``[B, ...]``, identified by ``baseline_key``) and a point on the
    line from it to the input, with Gaussian noise of absolute ``stdev`` on the input.

    Examples
    --------
    >>> ShapSpec(None, "b", samples=20, stdev=0.0, seed=1).rows_per_sample
    20
    """

    baselines: Any
    baseline_key: str
    samples: int
    stdev: float
    seed: int | None

    @property
    def rows_per_sample(self) -> int:
        """Rows evaluated per input sample: one per draw."""
        return self.samples

    @property
    def key(self) -> str:
        """Equal for draws that one forward can serve."""
        return f"shap:{self.baseline_key}:{self.samples}:{self.stdev!r}:{self.seed}"


@dataclass(frozen=True)
class MaskSpec:
    """Score-CAM's masked inputs: the inputs times each of the layer's ``channels``
    channels (upsampled, min-max normalised), read through ``grid`` (see
    :func:`~algebra.kernels.grids.to_grid`; ``grid_key`` identifies it).

    Examples
    --------
    >>> MaskSpec(16, None, "None").rows_per_sample
    16
    """

    channels: int
    grid: Any
    grid_key: str

    @property
    def rows_per_sample(self) -> int:
        """Rows evaluated per input sample: one masked copy per channel."""
        return self.channels

    @property
    def key(self) -> str:
        """Equal for masks one forward can serve."""
        return f"masks:{self.channels}:{self.grid_key}"


@dataclass(frozen=True)
class ConductanceSpec:
    """Layer conductance's input path: ``steps + 1`` points by ``rule`` (the point set's
    ``path`` holds the baseline), the layer captured and differentiated at each.

    Examples
    --------
    >>> ConductanceSpec(8, "gausslegendre").rows_per_sample
    9
    """

    steps: int
    rule: str

    @property
    def rows_per_sample(self) -> int:
        """Rows evaluated per input sample: the path's ``steps + 1`` points."""
        return self.steps + 1

    @property
    def key(self) -> str:
        """Equal for paths one forward can serve."""
        return f"conductance:{self.steps}:{self.rule}"
