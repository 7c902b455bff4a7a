"""The disagreement of two models on one input: a module whose outputs are ``f(x) - g(x)``."""

from __future__ import annotations

import torch


class Difference(torch.nn.Module):
    """Outputs ``left(x) - right(x)``; attributing class ``c`` explains ``f_c - g_c``.

    Examples
    --------
    >>> f, g = torch.nn.Linear(2, 3), torch.nn.Linear(2, 3)
    >>> x = torch.ones(4, 2)
    >>> torch.allclose(Difference(f, g)(x), f(x) - g(x))
    True
    """

    def __init__(self, left: torch.nn.Module, right: torch.nn.Module):
        super().__init__()
        self.left = left
        self.right = right
        self.training = False  # the wrapper itself; the models keep their own modes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``left(x) - right(x)``; the outputs must have the same shape.

        Examples
        --------
        >>> Difference(torch.nn.Identity(), torch.nn.Identity())(torch.ones(1, 2))
        tensor([[0., 0.]])
        """
        left, right = self.left(x), self.right(x)
        if left.shape != right.shape:
            raise ValueError(
                f"models: the two models' outputs differ in shape ({list(left.shape)} and "
                f"{list(right.shape)}); a disagreement needs the same classes"
            )
        return left - right
