"""Whether a model can run at all: no uninitialised lazy modules, no meta-device weights."""

from __future__ import annotations

import torch


def check_model_ready(module: torch.nn.Module) -> None:
    """Refuse a model that cannot run yet: uninitialised lazy modules, meta-device weights.

    Examples
    --------
    >>> check_model_ready(torch.nn.Linear(2, 2))
    >>> check_model_ready(torch.nn.Sequential(torch.nn.LazyLinear(2)))
    Traceback (most recent call last):
    ValueError: model: submodule '0' (LazyLinear) has uninitialised parameters; run the model once on an example batch (model(inputs[:1])) before attributing it
    >>> check_model_ready(torch.nn.Linear(2, 2, device="meta"))
    Traceback (most recent call last):
    ValueError: model: its parameter 'weight' is on the meta device, which holds no values; materialise the model first (model.to_empty(device="cpu"), then load its weights)
    """
    for name, sub in module.named_modules():
        if any(
            torch.nn.parameter.is_lazy(t)
            for t in [*sub.parameters(recurse=False), *sub.buffers(recurse=False)]
        ):
            raise ValueError(
                f"model: submodule {name!r} ({type(sub).__name__}) has uninitialised "
                "parameters; run the model once on an example batch (model(inputs[:1])) "
                "before attributing it"
            )
    for kind, named in (
        ("parameter", module.named_parameters()),
        ("buffer", module.named_buffers()),
    ):
        for name, t in named:
            if t.device.type == "meta":
                raise ValueError(
                    f"model: its {kind} {name!r} is on the meta device, which holds no "
                    'values; materialise the model first (model.to_empty(device="cpu"), '
                    "then load its weights)"
                )
