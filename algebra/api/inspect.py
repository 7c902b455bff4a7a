"""The eager half of NeuroInspect on a model: importance, visualisation and mitigation.

Mixed into :class:`~algebra.api.model.Model`. These run when called, unlike queries: each
is an optimisation or a training procedure over a whole data set (or over images made from
nothing), returns a finished result (a ``DataArray``, a ``Dataset`` or a new model), and
has nothing to share with the attribution passes that a lazy plan fuses. Counterfactual
neurons, which read a query's samples and its filters, are lazy
(:meth:`Query.counterfactual_neurons`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import xarray as xr

from ..errors import did_you_mean
from ..ir.model import ModelInfo
from ..ir.neurons import check_class_index
from ..kernels.batches import first_inputs
from ..kernels.clip_guide import TextImageGuide
from ..kernels.decision import check_class, decision_features, find_decision
from ..kernels.importance import importance_from_mean
from ..kernels.mitigate import mitigate as mitigate_head
from ..kernels.outputs import selecting
from ..kernels.visualize import visualize as visualize_neurons
from ..results.neurons import class_attrs, decision_attrs, importance_array
from ..results.visuals import visualisation_dataset
from .mitigation import Mitigation
from .running import check_hookable, progress_bar


class NeuronInspection:
    """``neuron_importance``, ``visualize`` and ``mitigate``, mixed into ``Model``."""

    info: ModelInfo
    module: torch.nn.Module  # Model.module

    def _layer_name(self, name: Any, argument: str) -> str | None:
        if name is None:
            return None
        names = self.info.layer_names
        if not isinstance(name, str) or name not in names:
            raise ValueError(
                f"{argument}: the model has no layer {name!r}."
                + (did_you_mean(name, names) if isinstance(name, str) else "")
                + " Layers are named as in model.named_modules(); see Model.layer_names."
            )
        return name

    def neuron_importance(
        self, cls: int | str, data: Any, layer: str | None = None, head: str | None = None
    ) -> xr.DataArray:
        """How much each decision neuron supports class ``cls`` over ``data``.

        imp_j = p_c(z̄) / p_c(z̄ with z_j = 0), z̄ the mean pooled decision feature over the
        data; imp_j > 1 means the neuron supports the class. All neurons in one ``[D, C]``
        computation. Runs now (one pass over the data, eval mode, no gradients).

        Parameters
        ----------
        cls : int or str
            The class (an index, or a class name of the model).
        data : tensor, (inputs, labels) or iterable of batches
            The samples whose mean feature is used (labels are not needed). The inputs of a
            model that takes several are a tuple or dict of tensors.
        layer : str, optional
            The feature layer, its output mean-pooled (default: the decision layer's input).
        head : str, optional
            The ``nn.Linear`` decision layer, when it is not the last one called.

        Returns
        -------
        xarray.DataArray
            Dims ``neuron``.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)).eval()
        >>> imp = ia.model(net).neuron_importance(1, torch.rand(10, 3))
        >>> imp.dims, imp.sizes["neuron"], imp.attrs["head"]
        (('neuron',), 4, '2')
        """
        layer, head = self._layer_name(layer, "layer"), self._layer_name(head, "head")
        cls = check_class_index(cls, self.info)
        check_hookable(self.module)
        decision = find_decision(self.module, first_inputs(data), layer, head)
        cls = check_class(cls, decision.classes)
        z, _ = decision_features(self.module, decision, data)
        values = importance_from_mean(z.mean(0), decision.weight, decision.bias, cls)
        return importance_array(values, self.info, cls, decision, len(z))

    def visualize(
        self,
        layer: str,
        neurons: Any,
        cls: int | str | None = None,
        guide: Any = None,
        steps: int = 450,
        images: int = 4,
        size: int | Sequence[int] | None = None,
        seed: int | None = None,
        *,
        example: Any = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> xr.Dataset:
        """Images that excite each of ``neurons`` (channels of ``layer``), for class ``cls``.

        NeuroInspect's class-conditional visualisation: for neuron k and class c a batch
        of images maximises mean_b[(s_b + 0.05)(a_k + 0.5 l_c)] over random transforms, a_k
        the channel's spatial mean, l_c the class logit and s_b the ``guide``'s similarity
        (without a guide the factor is dropped, without a class only a_k remains).
        Images are a Fourier spectrum with decorrelated colours, optimised by AdamW on a
        cosine schedule; all neurons and images are one batch. Runs now, with a progress
        bar unless ``ia.options.progress`` is off.

        Parameters
        ----------
        layer : str
            The layer whose channels are visualised.
        neurons : int or list of int
            Channel indices of ``layer``.
        cls : int or str, optional
            Condition on this class (index or name).
        guide : callable, optional
            ``guide(images, cls) -> [B]``, e.g. :func:`ia.guides.open_clip <algebra.api.guides.open_clip>`;
            a guide without class names gets the model's.
        steps : int, default 450
        images : int, default 4
            Images per neuron.
        size : int, (H, W) or (C, H, W), optional
            The input size (3 channels unless given); else from ``example``.
        seed : int, optional
            Seeds the images and transforms (default: drawn from torch's generator).
        example : tensor or (C, H, W), optional
            A batch of inputs (or their shape) giving the size and channels.
        mean, std : list of float, optional
            The model sees ``(image - mean) / std`` (its input normalisation).

        Returns
        -------
        xarray.Dataset
            ``images [neuron, image, channel, y, x]`` in [0, 1], ``masks [neuron, image,
            y, x]`` (the neuron's active region), the final ``activation [neuron, image]``
            and ``logits [neuron, image, class]``, and ``loss [step]``; ``.ia.plot()``
            draws the images as a grid.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> torch.manual_seed(0) is not None
        True
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
        ...                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        ...                           torch.nn.Linear(4, 2)).eval()
        >>> with ia.set_options(progress=False):
        ...     vis = ia.model(net).visualize("1", [0, 2], cls=1, steps=5, images=2, size=12, seed=0)
        >>> vis.images.sizes
        Frozen({'neuron': 2, 'image': 2, 'channel': 3, 'y': 12, 'x': 12})
        >>> ia.model(net).visualize("1", [4], size=12)
        Traceback (most recent call last):
        ValueError: neurons: 4 is out of range for the channels of layer '1' (4 neurons: 0..3)
        """
        name = self._layer_name(layer, "layer")
        assert name is not None
        check_hookable(self.module)
        if cls is not None:
            cls = check_class_index(cls, self.info)
        guide = self._guide(guide)
        if hasattr(neurons, "tolist"):
            neurons = neurons.tolist()
        shape, channels = _size(size, example is not None)
        with (
            progress_bar(steps if isinstance(steps, int) else 0, f"visualize {name}") as bar,
            selecting(self.module, self.info.scores),  # its scores, as ia.model(output=) reads
        ):
            vis = visualize_neurons(
                self.module,
                name,
                neurons,
                cls=cls,
                guide=guide,
                steps=steps,
                images=images,
                size=shape,
                channels=channels,
                example=example,
                seed=seed,
                mean=mean,
                std=std,
                progress=bar,
            )
        settings = {"steps": steps, "images": images, "guide": _guide_name(guide)}
        return visualisation_dataset(vis, self.info, name, settings)

    def _guide(self, guide: Any) -> Any:
        if guide is None:
            return None
        if not callable(guide):
            raise TypeError(
                f"guide: expected a callable guide(images, cls) -> [B] similarities; got "
                f"{type(guide).__name__}"
            )
        if isinstance(guide, TextImageGuide) and guide.class_names is None:
            if self.info.classes is None:
                raise ValueError(
                    "guide: it has no class names, and neither has the model; pass classes= "
                    "to ia.model(...) or to the guide"
                )
            return guide.with_classes(self.info.classes)
        return guide

    def mitigate(
        self,
        neurons: Any,
        cls: int | str,
        data: Any,
        val_data: Any = None,
        ratio: float | None = None,
        lam: float = 0.01,
        epochs: int = 20,
        lr: float = 1e-3,
        select: str = "worst_class",
        groups: Any = None,
        control: bool = False,
        *,
        layer: str | None = None,
        head: str | None = None,
        seed: int = 0,
    ) -> Mitigation:
        """Edit only the decision layer so that class ``cls`` relies less on ``neurons``.

        NeuroInspect's false-correlation mitigation. A copy of the decision layer is
        retrained on the backbone's cached features (eval mode, computed once) with
        CE(Wz + b, y) + lam·‖(r(z_i) - o)_i‖₂, r(z) = p_c(z) / p_c(z with ``neurons``
        zeroed) the retaining ratio and o = ``ratio`` (default (min_{j in S} imp_j - 1)/3 + 1).
        Adam on a cosine schedule; after each epoch the checkpoint is scored on
        ``val_data`` (else ``data``) by ``select``, with early stopping. Runs now.

        The gain depends on the data that chooses the checkpoint: ``val_data`` must show the
        failure (the data the mistakes were found on, say); on a split as biased as the
        training data, neither the method nor the control moves much (see
        ``docs/neuroinspect.md``, Evidence). Ask for ``control=True`` before claiming a gain:
        plain retraining with the same schedule and selection can gain too.

        Parameters
        ----------
        neurons : int or list of int
            The decision neurons to rely less on (e.g. the top "insufficient" votes).
        cls : int or str
            The class whose reliance is edited.
        data : (inputs, labels) or iterable of batches
            Training data for the head (several inputs: a tuple or dict of tensors).
        val_data : (inputs, labels) or iterable of batches, optional
            Chooses the checkpoint and stops early; the report is computed on it.
        ratio : float, optional
            The target retaining ratio o.
        lam, epochs, lr : float, int, float
            The ratio term's weight, the epochs and Adam's learning rate.
        select : {"worst_class", "overall"}
            How checkpoints are scored.
        groups : sequence of int, optional
            One group id per evaluation sample: the report adds per-group and worst-group
            accuracy.
        control : bool, default False
            Also train the same head with the same batches, schedule and selection without
            the ratio term, and report it beside.
        layer, head : str, optional
            The feature layer (pooled) and the ``nn.Linear`` decision layer.
        seed : int, default 0
            Seeds the batches (shared by the method and the control).

        Returns
        -------
        Mitigation
            ``.model`` (a new ``ia.Model`` over the edited copy), ``.module``, ``.report``
            (an ``xarray.Dataset`` by ``version``: before, after, control), ``.evaluate``.

        Examples
        --------
        >>> import torch, algebra as ia
        >>> torch.manual_seed(0) is not None
        True
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3)).eval()
        >>> x, y = torch.randn(90, 4), torch.randint(0, 3, (90,))
        >>> fix = ia.model(net, name="mlp").mitigate([1, 2], 0, (x, y), epochs=2, control=True)
        >>> fix.model.name, fix.module[0].weight is net[0].weight, fix.module[2] is net[2]
        ('mlp (mitigated)', True, False)
        >>> fix.report.overall.version.values.tolist()
        ['before', 'after', 'control']
        """
        layer, head = self._layer_name(layer, "layer"), self._layer_name(head, "head")
        cls = check_class_index(cls, self.info)
        if not isinstance(control, bool):
            raise TypeError(f"control: expected True or False; got {control!r}")
        check_hookable(self.module)
        if hasattr(neurons, "tolist"):
            neurons = neurons.tolist()
        fitted = mitigate_head(
            self.module,
            neurons,
            cls,
            data,
            val_data=val_data,
            groups=groups,
            layer=layer,
            head=head,
            ratio=ratio,
            lam=lam,
            epochs=epochs,
            lr=lr,
            select=select,
            control=control,
            seed=seed,
        )
        attrs = {
            "method": "mitigate",
            "model": self.info.name,
            **class_attrs(self.info, cls),
            **decision_attrs(fitted.decision),
            "neurons": fitted.neurons.tolist(),
            "ratio": fitted.ratio,
            "lam": float(lam),
            "epochs": epochs,
            "lr": float(lr),
            "select": select,
            "evaluated_on": "data" if val_data is None else "val_data",
            "epoch": fitted.fit.epoch,
        }
        if fitted.control_fit is not None:
            attrs["epoch_control"] = fitted.control_fit.epoch
        make = type(self)
        name, classes = self.info.name, self.info.classes
        edited = make(fitted.module, name=f"{name} (mitigated)", classes=classes)  # type: ignore[call-arg]
        contrast = (
            make(fitted.control_module, name=f"{name} (control)", classes=classes)  # type: ignore[call-arg]
            if fitted.control_module is not None
            else None
        )
        return Mitigation(fitted, edited, contrast, attrs)


def _size(size: Any, example: bool) -> tuple[Any, int | None]:
    """``size`` as the kernels take it, (H, W) or an int, and the channels: as given, else
    the example's, else 3."""
    if size is None:
        return None, None
    if isinstance(size, (tuple, list)) and len(size) == 3:
        return (size[1], size[2]), size[0]
    if isinstance(size, (int, tuple, list)) and not isinstance(size, bool):
        return size, None if example else 3
    raise TypeError(f"size: expected an int, (H, W) or (C, H, W); got {size!r}")


def _guide_name(guide: Any) -> str | None:
    if guide is None:
        return None
    return getattr(guide, "__qualname__", type(guide).__name__)
