"""``ia.model``: wrap a PyTorch module so queries can be built on it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .kernels.checks import as_inputs, as_labels, content_token, fingerprint, model_dtype
from .nodes import Ref
from .operators import Source

if TYPE_CHECKING:
    import torch

    from .view import Query


def default_dims(ndim: int) -> tuple[str, ...]:
    """Names of the non-batch dimensions of an ``ndim``-D batch.

    Examples
    --------
    >>> default_dims(4), default_dims(2), default_dims(3)
    (('channel', 'y', 'x'), ('feature',), ('dim_1', 'dim_2'))
    """
    if ndim == 4:
        return ("channel", "y", "x")
    if ndim == 2:
        return ("feature",)
    return tuple(f"dim_{i}" for i in range(1, ndim))


class Model:
    """A PyTorch module made queryable; build one with :func:`model`.

    The module is only referenced, never modified: every computation runs it in eval mode
    with frozen parameters and restores its state afterwards.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        *,
        name: str | None = None,
        classes: Sequence[str] | None = None,
    ):
        import torch

        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"module: expected a torch.nn.Module; got {type(module).__name__}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name: expected a string; got {type(name).__name__}")
        if classes is not None:
            if isinstance(classes, str) or not all(isinstance(c, str) for c in classes):
                raise TypeError("classes: expected a list of class names (strings)")
            if len(classes) == 0:
                raise ValueError("classes: expected at least one class name")
        self.module = module
        self.name = name or type(module).__name__
        self.classes = None if classes is None else tuple(classes)
        self.layer_names = tuple(n for n, _ in module.named_modules() if n)
        self.ref = Ref(self, f"model:{id(module)}:{self.name}:{self.classes}")
        # The model whose outputs resolve 'pred' and 'topk' targets (None: this one).
        self.reference: Model | None = None
        self.parts: tuple[Model, Model] | None = None

    @property
    def num_classes(self) -> int | None:
        """The number of classes when ``classes`` was given, else ``None``."""
        return None if self.classes is None else len(self.classes)

    def __repr__(self) -> str:
        return f"Model({self.name!r}, layers={len(self.layer_names)}, classes={self.num_classes})"

    def on(
        self,
        inputs: Any,
        *,
        labels: Any = None,
        ids: Sequence[Any] | None = None,
        dims: Sequence[str] | None = None,
    ) -> Query:
        """Start a lazy query of this model on a batch of inputs; nothing runs yet.

        Parameters
        ----------
        inputs : torch.Tensor
            A floating-point batch ``[N, ...]`` (NumPy arrays are accepted).
        labels : torch.Tensor or sequence of int, optional
            One integer label per sample; enables the ``"label"`` target and coordinate.
        ids : sequence, optional
            Sample identifiers, used as the ``sample`` coordinate (default ``0..N-1``).
        dims : sequence of str, optional
            Names of the non-batch input dimensions (default ``channel, y, x`` for images,
            ``feature`` for vectors, ``dim_1, ...`` otherwise).

        Returns
        -------
        Query

        Examples
        --------
        >>> import torch, algebra as ia
        >>> m = ia.model(torch.nn.Linear(4, 3))
        >>> m.on(torch.rand(5, 4), labels=[0, 1, 2, 0, 1])
        Query(Linear on inputs [5, 4])
        """
        from .view import Query

        x = as_inputs(inputs, model_dtype(self.module))
        y = None if labels is None else as_labels(labels, x.shape[0], self.num_classes)
        if isinstance(dims, str) or (
            dims is not None and not all(isinstance(d, str) for d in dims)
        ):
            raise TypeError(f"dims: expected a sequence of names (str); got {dims!r}")
        if isinstance(ids, str):
            raise TypeError(f"ids: expected one id per sample; got the string {ids!r}")
        names = default_dims(x.ndim) if dims is None else tuple(dims)
        sample_ids = None if ids is None else tuple(_plain(i) for i in _listed(ids))
        source = Source(
            model=self.ref,
            inputs=Ref(x, fingerprint(x)),
            labels=None if y is None else Ref(y, content_token(y)),
            shape=tuple(x.shape),
            dims=names,
            ids=sample_ids,
        )
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
    >>> d.name, d.ref == disagreement(f, g).ref, d.reference is f
    ('f - g', True, True)
    """
    from .kernels.difference import Difference

    if left.classes is not None and right.classes is not None and left.classes != right.classes:
        raise ValueError(
            "models: the two models name their classes differently; a disagreement "
            "compares the same classes"
        )
    derived = Model(
        Difference(left.module, right.module),
        name=f"{left.name} - {right.name}",
        classes=left.classes or right.classes,
    )
    derived.ref = Ref(derived, f"model:difference:{left.ref.token}:{right.ref.token}")
    derived.reference = left
    derived.parts = (left, right)
    derived.layer_names = ()  # layers of two models are not one model's layers
    return derived


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
