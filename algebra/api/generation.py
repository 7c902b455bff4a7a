"""``q.generated(steps)``: attribute each token a language model generates to the prompt.

Generation runs when called (the model's own greedy decoding, on the whole batch without
gradients); the attributions stay lazy. The query returned is the model on the prompt with
the generated tokens appended (all but the last), read without a position, and its target
``"generated"`` names every generated token at the position that chose it, along a
``step`` dim: one forward and one batched backward give every step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from ..errors import positive_integer
from ..ir.node import Ref
from ..ir.targets import Target
from ..ir.views import Source
from ..kernels.checks import content_token, fingerprint
from ..kernels.generation import greedy
from ..kernels.outputs import OutputSpec
from ..kernels.packed import packing_of
from .bindings import wrap
from .outputs import model_info, without_position

if TYPE_CHECKING:
    from .query import Query


class GenerationMethods:
    """``generated``, mixed into :class:`~algebra.api.query.Query`."""

    node: Any
    filters: tuple

    def generated(
        self,
        steps: int,
        *,
        append: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> Query:
        """Generate ``steps`` tokens greedily from the prompts; a query on the prompts
        followed by the generated tokens, whose target ``"generated"`` explains each one.

        Every attribution method then takes ``"generated"`` as its target and adds a
        ``step`` dim: step ``s`` attributes the ``s``-th generated token's score, at the
        position that chose it, to the prompt and the tokens generated before it (later
        positions get zero, the model being causal). A ``class`` coordinate over
        ``(sample, step)`` holds the tokens, ``position`` the positions read.

        Parameters
        ----------
        steps : int
            Tokens generated per prompt.
        append : callable, optional
            ``append(inputs, tokens)``: the inputs with each sample's token (``[N]``)
            appended. By default token ids ``[N, L]`` take the id and one-hot rows
            ``[N, L, V]`` its row.

        Returns
        -------
        Query

        Examples
        --------
        >>> import torch, algebra as ia
        >>> _ = torch.manual_seed(0)
        >>> class LM(torch.nn.Module):                    # causal: a running mean of rows
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.head = torch.nn.Linear(6, 6)
        ...     def forward(self, onehot):
        ...         steps = torch.arange(1, onehot.shape[1] + 1)[:, None]
        ...         return {"logits": self.head(onehot.cumsum(1) / steps)}
        >>> prompts = torch.nn.functional.one_hot(torch.tensor([[1, 2, 3], [4, 0, 2]]), 6).float()
        >>> g = ia.model(LM().eval()).on(prompts).generated(steps=2)
        >>> r = g.saliency("generated").compute()
        >>> r.dims, r["class"].dims, r.position.values.tolist()
        (('sample', 'step', 'dim_1', 'dim_2'), ('sample', 'step'), [2, 3])
        """
        steps = positive_integer(steps, "steps")
        source = self.node
        if not isinstance(source, Source):
            raise ValueError(
                "generated: call it on the query of the prompts, before any layer, window, "
                "edit or noise (they apply to the query it returns)"
            )
        x = source.inputs.value
        if not isinstance(x, torch.Tensor):
            raise ValueError("generated: the prompts must be a tensor, not inputs read lazily")
        if append is not None and not callable(append):
            raise TypeError(f"append: expected a callable; got {type(append).__name__}")
        info = source.model
        select = None if info.scores is None else info.scores.select
        if info.inputs is not None:  # token ids, packed into rows: generate on the ids
            return self._generated_ids(source, steps, select, append)
        tokens, inputs, vocabulary = greedy(info.torch_module, x, steps, select, append)
        model = without_position(info)
        extended = Source(
            model,
            Ref(inputs, fingerprint(inputs)),
            source.labels,
            tuple(inputs.shape),
            source.dims,
            source.ids,
        )
        target = Target("generated", (Ref(tokens, content_token(tokens)), x.shape[1], vocabulary))
        return type(self)(extended, self.filters, target)  # type: ignore[call-arg, return-value]

    def _generated_ids(self, source: Source, steps: int, select: Any, append: Any) -> Query:
        """Generation from token ids: greedy on the user's model, then the model on the
        prompts and generated ids, packed again as ``Model.on`` packs token ids."""
        info = source.model
        layout, packed = info.inputs, info.torch_module
        if layout.kind != "single" or layout.kwargs or layout.passed or not layout.integer:
            raise ValueError(
                "generated: generation from several inputs or with forward_kwargs (an "
                "attention mask is not extended) is not supported yet; give the token ids "
                "[N, L] alone"
            )
        (ids,), _ = packing_of(packed).unpack(source.inputs.value)
        tokens, inputs, vocabulary = greedy(packed.inner, ids, steps, select, append)
        plain = model_info(
            packed.inner, info.name, info.classes, info.layer_names, OutputSpec(select)
        )
        labels = None if source.labels is None else source.labels.value
        query = wrap(plain).on(inputs, labels=labels, ids=source.ids)
        target = Target("generated", (Ref(tokens, content_token(tokens)), ids.shape[1], vocabulary))
        return type(self)(query.node, self.filters, target)  # type: ignore[call-arg, return-value]
