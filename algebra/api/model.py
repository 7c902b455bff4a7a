"""``ia.model``: wrap a PyTorch module so queries can be built on it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import xarray as xr

from ..ir.model import ModelInfo
from ..ir.node import Ref
from ..ir.views import Source, default_dims
from ..kernels.checks import as_inputs, as_labels, content_token, fingerprint, model_dtype
from .bindings import wrap
from .difference import difference_of
from .inputs import packed_model, several
from .inspect import NeuronInspection
from .query import Query
from .sources import lazy_inputs, unlabelled_xarray


class Model(NeuronInspection):
    """A PyTorch module made queryable; build one with :func:`model`.

    The module is only referenced, never modified: every computation runs it in eval mode
    with frozen parameters and restores its state afterwards. Besides queries (:meth:`on`),
    a model inspects its decision neurons eagerly (:meth:`neuron_importance`,
    :meth:`visualize`, :meth:`mitigate`; see ``docs/neuroinspect.md``).
    """

    def __init__(
        self,
        module: torch.nn.Module,
        *,
        name: str | None = None,
        classes: Sequence[str] | None = None,
    ):
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"module: expected a torch.nn.Module; got {type(module).__name__}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name: expected a string; got {type(name).__name__}")
        if classes is not None:
            if isinstance(classes, str) or not all(isinstance(c, str) for c in classes):
                raise TypeError("classes: expected a list of class names (strings)")
            if len(classes) == 0:
                raise ValueError("classes: expected at least one class name")
            repeated = sorted({c for c in classes if list(classes).count(c) > 1})
            if repeated:
                raise ValueError(
                    f"classes: each class name must be unique; {', '.join(map(repr, repeated))} "
                    "appears more than once"
                )
        name = name or type(module).__name__
        classes = None if classes is None else tuple(classes)
        layers = tuple(n for n, _ in module.named_modules() if n)
        ref = Ref(module, f"model:{id(module)}:{name}:{classes}")
        self.info = ModelInfo(ref, name, classes, layers)

    @classmethod
    def of(cls, info: ModelInfo) -> Model:
        """The user-facing model of what the nodes know of it (no module is inspected).

        Examples
        --------
        >>> import torch, algebra as ia
        >>> m = ia.model(torch.nn.Linear(2, 3), name="lin")
        >>> Model.of(m.info).info == m.info
        True
        """
        model = cls.__new__(cls)
        model.info = info
        return model

    @property
    def module(self) -> torch.nn.Module:
        """The wrapped module."""
        return self.info.torch_module

    @property
    def name(self) -> str:
        """The model's name in plans and result attributes."""
        return self.info.name

    @property
    def classes(self) -> tuple[str, ...] | None:
        """The class names, when given."""
        return self.info.classes

    @property
    def layer_names(self) -> tuple[str, ...]:
        """The names of the layers that can be selected (as in ``module.named_modules()``)."""
        return self.info.layer_names

    @property
    def num_classes(self) -> int | None:
        """The number of classes when ``classes`` was given, else ``None``."""
        return self.info.num_classes

    def __repr__(self) -> str:
        return f"Model({self.name!r}, layers={len(self.layer_names)}, classes={self.num_classes})"

    def on(
        self,
        inputs: Any,
        *,
        labels: Any = None,
        ids: Sequence[Any] | None = None,
        dims: Any = None,
        batch_size: int | None = None,
        attribute: Any = None,
        forward_kwargs: dict[str, Any] | None = None,
        tokens: Sequence[Sequence[str]] | None = None,
    ) -> Query:
        """Start a lazy query of this model on a batch of inputs; nothing runs yet.

        Parameters
        ----------
        inputs : torch.Tensor, numpy.ndarray, tuple or dict of tensors, dask array, xarray.DataArray, Dataset or DataLoader
            A floating-point batch ``[N, ...]``. A dask array (or a ``DataArray`` backed by
            one, e.g. opened from Zarr), a torch ``Dataset`` (of inputs or ``(input,
            label)`` pairs) or a ``DataLoader`` (not shuffled) is read chunk by chunk when
            computed (see ``docs/scale-out.md``). A ``DataArray``'s first dim holds the
            samples; its other dims name ``dims``, its index gives ``ids`` and its
            ``label`` coordinate the labels, unless given. Several inputs are a tuple
            (passed by position) or a dict (passed by keyword: its keys are the forward's
            arguments), each ``[N, ...]``; integer tensors are token ids (attribute an
            embedding layer, or perturb them). See ``docs/models-and-inputs.md``.
        labels : torch.Tensor, sequence of int, dask array or str, optional
            One integer label per sample; enables the ``"label"`` target and coordinate.
            With a ``DataArray``, the name of a coordinate along its samples.
        ids : sequence, optional
            Sample identifiers, used as the ``sample`` coordinate (default ``0..N-1``).
        dims : sequence of str, optional
            Names of the non-batch input dimensions (default ``channel, y, x`` for images,
            ``feature`` for vectors, ``token`` for token ids, ``dim_1, ...`` otherwise); for
            several inputs, one sequence per input (a tuple, or a dict by name).
        batch_size : int, optional
            For a ``Dataset``: items collated at a time (default: a chunk's worth).
        attribute : str, int or sequence of them, optional
            The inputs attributed (by name, or position in a tuple); the others pass
            through unchanged. Default: every floating-point input (the first input when
            none is). Methods then return one attribution per attributed input.
        forward_kwargs : dict, optional
            Extra keyword arguments of the forward (e.g. ``attention_mask``): tensors with
            the samples' leading dim ``N`` follow the samples through paths, noise,
            perturbed copies and chunks; the others are passed as they are.
        tokens : list of lists of str, optional
            The text of each sample's tokens, for token ids ``[N, L]``: a ``token_text``
            coordinate on results over the tokens.

        Returns
        -------
        Query

        Examples
        --------
        >>> import torch, algebra as ia
        >>> m = ia.model(torch.nn.Linear(4, 3))
        >>> m.on(torch.rand(5, 4), labels=[0, 1, 2, 0, 1])
        Query(Linear on inputs [5, 4])
        >>> data = torch.utils.data.TensorDataset(torch.rand(100, 4), torch.randint(0, 3, (100,)))
        >>> m.on(data, batch_size=32)
        Query(Linear on inputs [100, 4])
        >>> class Two(torch.nn.Module):
        ...     def forward(self, x, mask):
        ...         return (x * mask) @ torch.ones(4, 3)
        >>> ia.model(Two().eval()).on({"x": torch.rand(5, 4), "mask": torch.ones(5, 4)}, attribute="x")
        Query(Two on inputs x [5, 4], mask (passed))
        >>> ia.model(Two().eval()).on({"x": torch.rand(5, 4), "maks": torch.ones(5, 4)})
        Traceback (most recent call last):
        ValueError: inputs: 'maks' is not an argument of forward(x, mask). Did you mean 'mask'?
        """
        if several(inputs, attribute, forward_kwargs, tokens):
            if batch_size is not None:
                raise TypeError("batch_size: only for a torch Dataset, not for several inputs")
            info, rows = packed_model(
                self.info,
                inputs,
                attribute=attribute,
                forward_kwargs=forward_kwargs,
                dims=dims,
                tokens=tokens,
            )
            n = rows.shape[0]
            y = None if labels is None else as_labels(labels, n, self.num_classes)
            labels_ref = None if y is None else Ref(y, content_token(y))
            packed = Model.of(info)
            return packed._on(
                Ref(rows, fingerprint(rows)), labels_ref, tuple(rows.shape), ids, ("packed",)
            )
        if isinstance(inputs, xr.DataArray):
            inputs, labels, ids, dims = unlabelled_xarray(inputs, labels, ids, dims)
        dtype = model_dtype(self.module)
        lazy = lazy_inputs(inputs, labels, batch_size, dtype, self.num_classes)
        if lazy is not None:
            inputs_ref = Ref(lazy, lazy.token)
            labels_ref = None if lazy.labels_token is None else Ref(lazy, lazy.labels_token)
            return self._on(inputs_ref, labels_ref, tuple(lazy.shape), ids, dims)
        x = as_inputs(inputs, dtype)
        y = None if labels is None else as_labels(labels, x.shape[0], self.num_classes)
        labels_ref = None if y is None else Ref(y, content_token(y))
        return self._on(Ref(x, fingerprint(x)), labels_ref, tuple(x.shape), ids, dims)

    def _on(
        self,
        inputs: Ref,
        labels: Ref | None,
        shape: tuple[int, ...],
        ids: Sequence[Any] | None,
        dims: Sequence[str] | None,
    ) -> Query:
        if isinstance(dims, str) or (
            dims is not None and not all(isinstance(d, str) for d in dims)
        ):
            raise TypeError(f"dims: expected a sequence of names (str); got {dims!r}")
        if isinstance(ids, str):
            raise TypeError(f"ids: expected one id per sample; got the string {ids!r}")
        names = default_dims(len(shape)) if dims is None else tuple(dims)
        sample_ids = None if ids is None else tuple(_plain(i) for i in _listed(ids))
        source = Source(self.info, inputs, labels, shape, names, sample_ids)
        return Query(source)


def disagreement(left: Model, right: Model) -> Model:
    """A model whose outputs are ``left(x) - right(x)``, for the model-level anti-join.

    Its ``pred`` is the left model's prediction; its token derives from the two models',
    so building it twice gives equal expressions.

    Examples
    --------
    >>> import torch, algebra as ia
    >>> f, g = ia.model(torch.nn.Linear(2, 3), name="f"), ia.model(torch.nn.Linear(2, 3), name="g")
    >>> d = disagreement(f, g)
    >>> d.name, d.info == disagreement(f, g).info, d.info.reference == f.info
    ('f - g', True, True)
    """
    return Model.of(difference_of(left.info, right.info))


def _listed(ids: Any) -> list[Any]:
    return ids.tolist() if hasattr(ids, "tolist") else list(ids)


def _plain(value: Any) -> Any:
    value = value.item() if hasattr(value, "item") else value
    if not isinstance(value, (int, float, str)):
        raise TypeError(f"ids: expected numbers or strings; got {type(value).__name__}")
    return value


def model(
    module: torch.nn.Module, *, name: str | None = None, classes: Sequence[str] | None = None
) -> Model:
    """Wrap a PyTorch module for querying.

    Parameters
    ----------
    module : torch.nn.Module
        A classifier mapping a batch ``[N, ...]`` to scores ``[N, classes]``.
    name : str, optional
        A name for plans and result attributes (default: the module's class name).
    classes : list of str, optional
        Class names; they label the ``target`` axis, and let targets be checked early.

    Returns
    -------
    Model

    Examples
    --------
    >>> import torch, algebra as ia
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).eval()
    >>> m = ia.model(net, name="mlp", classes=["a", "b", "c"])
    >>> m.layer_names
    ('0', '1', '2')
    """
    return Model(module, name=name, classes=classes)


@wrap.register
def _(info: ModelInfo) -> Model:
    return Model.of(info)
