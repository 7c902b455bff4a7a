"""Greedy generation from a language model, for attributing each generated token.

:func:`greedy` runs the model ``steps`` times on the whole batch without gradients, each
time appending every sample's most likely next token, and returns the tokens ``[N, k]``
and the inputs that hold the prompt and the first ``k - 1`` of them: one forward of a
causal model on those inputs gives, at position ``prompt - 1 + s``, the scores that chose
step ``s``, so every step is attributed from one forward and one batched backward. A model
whose scores there differ from generation's (it looks ahead) is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .guard import device_of, guarded
from .outputs import pick

Append = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def appended(inputs: torch.Tensor, tokens: torch.Tensor, append: Append | None) -> torch.Tensor:
    """``inputs`` ``[N, L, ...]`` with one token per sample appended: token ids
    ``[N, L]`` take the id, one-hot rows ``[N, L, V]`` its row; ``append(inputs, tokens)``
    does it for other inputs.

    Examples
    --------
    >>> appended(torch.tensor([[3, 1]]), torch.tensor([2]), None)
    tensor([[3, 1, 2]])
    >>> appended(torch.zeros(1, 2, 3), torch.tensor([2]), None)[0, -1]
    tensor([0., 0., 1.])
    """
    tokens = tokens.to(inputs.device)
    if append is not None:
        out = append(inputs, tokens)
        if not isinstance(out, torch.Tensor) or out.shape[0] != inputs.shape[0]:
            raise ValueError(
                "append: must return the inputs with one more token per sample, a tensor "
                f"[N, L + 1, ...]; got {type(out).__name__}"
            )
        return out
    if not inputs.is_floating_point() and inputs.ndim == 2:
        return torch.cat([inputs, tokens[:, None].to(inputs.dtype)], 1)
    return torch.cat([inputs, _one_hot(inputs, tokens)], 1)


def _one_hot(inputs: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    if not inputs.is_floating_point() or inputs.ndim != 3:
        raise ValueError(
            f"append: inputs of shape {list(inputs.shape)} ({inputs.dtype}) are neither token "
            "ids [N, L] nor one-hot rows [N, L, V]; pass append=fn(inputs, tokens) returning "
            "the inputs with each sample's token appended"
        )
    width = inputs.shape[2]
    if int(tokens.max()) >= width:
        raise ValueError(
            f"append: token {int(tokens.max())} has no one-hot row in inputs of width "
            f"{width}; pass append=fn(inputs, tokens)"
        )
    return torch.nn.functional.one_hot(tokens, width).to(inputs.dtype)[:, None]


def _sequence(out: Any, select: Any) -> torch.Tensor:
    scores = pick(out, select)
    if scores.ndim != 3:
        raise ValueError(
            f"generated: generation reads sequence scores [N, L, V]; the model's scores have "
            f"shape {list(scores.shape)}"
        )
    return scores


def greedy(
    module: torch.nn.Module,
    inputs: torch.Tensor,
    steps: int,
    select: Any = None,
    append: Append | None = None,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Generate ``steps`` tokens greedily; the tokens ``[N, steps]`` (on the inputs'
    device), the inputs to attribute them on (prompt and all but the last token) and the
    vocabulary size.

    Raises ``ValueError`` when the model is not causal: its scores at a position change
    when later tokens are present.

    Examples
    --------
    >>> emb = torch.nn.Embedding(5, 5)
    >>> _ = torch.nn.init.eye_(emb.weight)
    >>> class Next(torch.nn.Module):            # scores favour token (t + 1) mod 5
    ...     def forward(self, ids):
    ...         return emb(ids).roll(1, -1)
    >>> tokens, inputs, vocabulary = greedy(Next().eval(), torch.tensor([[0, 1], [2, 3]]), 3)
    >>> tokens, inputs, vocabulary
    (tensor([[2, 3, 4],
            [4, 0, 1]]), tensor([[0, 1, 2, 3],
            [2, 3, 4, 0]]), 5)
    """
    device = device_of(module, default=inputs.device)
    current = inputs.to(device)
    chosen: list[torch.Tensor] = []
    scores: list[torch.Tensor] = []
    prompt = inputs.shape[1]
    with guarded(module), torch.no_grad():
        for step in range(steps):
            last = _sequence(module(current), select)[:, -1]
            scores.append(last)
            chosen.append(last.argmax(-1))
            if step < steps - 1:
                current = appended(current, chosen[-1], append)
        if steps > 1:  # one forward of the whole sequence must give generation's scores
            whole = _sequence(module(current), select)[:, prompt - 1 :]
            _check_causal(whole, torch.stack(scores, 1))
    tokens = torch.stack(chosen, 1)
    return tokens.to(inputs.device), current.to(inputs.device), scores[0].shape[-1]


def _check_causal(whole: torch.Tensor, stepwise: torch.Tensor) -> None:
    scale = float(stepwise.abs().max()) or 1.0
    gap = float((whole - stepwise).abs().max())
    if gap > 1e-4 * scale:
        raise ValueError(
            "generated: the model's scores at a position change when later tokens are present "
            f"(by up to {gap:.3g}); attributing generation steps from one forward needs a "
            "causal (left-to-right) language model"
        )
