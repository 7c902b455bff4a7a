"""Class-conditional feature visualisation (CLIP-Illusion without CLIP unless a guide is given).

For neuron k of a layer and class c, a batch of images is optimised to maximise

    mean_b[(s_b + eps) · (a_k(x̃_b) + gamma·l_c(x̃_b))]

where x̃_b is image b after a random transform, a_k the spatial mean of channel k, l_c the
model's logit for c and s_b a guide's text-image similarity (without a guide the factor is
dropped; without a class only a_k remains). Images are parameterised in Fourier space
(:mod:`algebra.kernels.fourier`) and optimised with AdamW on a cosine schedule; every
requested neuron and image is one row of a single batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .augment import transform
from .capture import refuse_script
from .checks import model_dtype
from .decision import check_class, check_neurons
from .fourier import init_spectrum, spectrum_scale, to_images
from .guard import device_of, guarded

Guide = Callable[[torch.Tensor, int], torch.Tensor]
Progress = Callable[[int, int, float], None]


@dataclass(frozen=True)
class Visualisation:
    """``images [K, I, C, H, W]`` in [0, 1] for K neurons and I images each; ``masks
    [K, I, H, W]`` where the neuron's upsampled, z-scored activation map exceeds the
    threshold; the final (untransformed) ``activation [K, I]`` and ``logits [K, I, classes]``;
    the objective per step in ``losses``; and the ``seed`` used."""

    images: torch.Tensor
    masks: torch.Tensor
    activation: torch.Tensor
    logits: torch.Tensor
    neurons: torch.Tensor
    cls: int | None
    losses: torch.Tensor
    seed: int


def visualize(
    module: nn.Module,
    layer: str,
    neurons: Any,
    *,
    cls: int | None = None,
    guide: Guide | None = None,
    steps: int = 450,
    images: int = 4,
    size: int | Sequence[int] | None = None,
    channels: int | None = None,
    example: torch.Tensor | Sequence[int] | None = None,
    seed: int | None = None,
    lr: float = 9e-3,
    weight_decay: float = 2e-4,
    epsilon: float = 0.05,
    gamma: float = 0.5,
    noise: float = 0.2,
    threshold: float = 0.25,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    progress: Progress | None = None,
) -> Visualisation:
    """Optimise ``images`` inputs per neuron of ``layer`` (all in one batch).

    The input size comes from ``size`` (``int`` or ``(H, W)``) and ``channels``, or from
    ``example`` (a batch ``[N, C, H, W]`` or a shape ``(C, H, W)``). Images live in
    [0, 1]; with ``mean``/``std`` the model sees ``(image - mean) / std``. ``guide`` maps
    a batch of transformed images and ``cls`` to one similarity per image. ``progress``
    is called after every step with ``(step, steps, loss)``. ``seed=None`` draws a seed
    from torch's global generator (so ``torch.manual_seed`` fixes it).

    Examples
    --------
    >>> torch.manual_seed(0) is not None
    True
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
    ...                     nn.Flatten(), nn.Linear(4, 2)).eval()
    >>> vis = visualize(net, "1", [0, 2], cls=1, steps=5, images=2, size=12, channels=3, seed=0)
    >>> vis.images.shape, vis.masks.shape, vis.logits.shape
    (torch.Size([2, 2, 3, 12, 12]), torch.Size([2, 2, 12, 12]), torch.Size([2, 2, 2]))
    """
    refuse_script(module)
    if layer not in dict(module.named_modules()):
        raise ValueError(f"layer: the model has no submodule {layer!r}")
    steps = _positive(steps, "steps")
    images = _positive(images, "images")
    c, h, w = _input_shape(size, channels, example)
    if seed is None:
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
    device = device_of(module)
    dtype = model_dtype(module) or torch.float32
    normalise = _normaliser(mean, std, c, device, dtype)
    gen = torch.Generator().manual_seed(int(seed))
    sub = dict(module.named_modules())[layer]
    with guarded(module), _layer_output(sub, layer) as out:
        probe = torch.full((1, c, h, w), 0.5, device=device, dtype=dtype)
        with torch.no_grad():
            logits = _forward(module, normalise(probe))
        act_shape = out["act"].shape
        index = check_neurons(neurons, act_shape[1], f"the channels of layer {layer!r}")
        if cls is not None:
            cls = check_class(cls, logits.shape[1])
        if guide is not None and cls is None:
            raise ValueError("guide: a guide scores images against a class; pass cls= as well")
        k = len(index)
        rows = index.repeat_interleave(images).to(device)
        spectrum = init_spectrum(k * images, c, h, w, generator=gen).to(device, dtype)
        spectrum.requires_grad_(True)
        scale = spectrum_scale(h, w).to(device, dtype)
        if guide is not None:
            with torch.no_grad():
                _similarity(guide, to_images(spectrum, h, w, scale), cls)
        opt = torch.optim.AdamW([spectrum], lr=lr, betas=(0.5, 0.99), weight_decay=weight_decay)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=0.12 * lr)
        losses = torch.zeros(steps)
        for step in range(steps):
            with torch.enable_grad():
                seen = transform(
                    to_images(spectrum, h, w, scale), gen, noise=noise * (1 - step / steps)
                )
                logits = _forward(module, normalise(seen))
                term = _channel_means(out["act"], rows)
                if cls is not None:
                    term = term + gamma * logits[:, cls]
                if guide is not None:
                    term = (_similarity(guide, seen, cls) + epsilon) * term
                loss = -term.view(k, images).mean(1).sum()
                opt.zero_grad()
                loss.backward()
            opt.step()
            schedule.step()
            losses[step] = loss.detach().cpu()
            if progress is not None:
                progress(step + 1, steps, float(losses[step]))
        with torch.no_grad():
            final = to_images(spectrum.detach(), h, w, scale)
            logits = _forward(module, normalise(final))
            act = out["act"]
            activation = _channel_means(act, rows)
            masks = _masks(act, rows, h, w, threshold)
    return Visualisation(
        final.view(k, images, c, h, w),
        masks.view(k, images, h, w),
        activation.view(k, images),
        logits.view(k, images, -1),
        index,
        cls,
        losses,
        int(seed),
    )


def _forward(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    logits = module(x)
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"module: expected logits [N, classes] from the model; got {shape}")
    return logits


def _channel_means(act: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Row b's channel ``rows[b]``, averaged over space: ``[B]``."""
    picked = act[torch.arange(len(rows), device=act.device), rows]
    return picked.flatten(1).mean(1) if picked.ndim > 1 else picked


def _masks(act: torch.Tensor, rows: torch.Tensor, h: int, w: int, threshold: float) -> torch.Tensor:
    picked = act[torch.arange(len(rows), device=act.device), rows]
    if picked.ndim == 1:  # a vector layer has no map: nothing to dim
        return torch.ones(len(rows), h, w, dtype=torch.bool, device=act.device)
    up = nn.functional.interpolate(
        picked[:, None], size=(h, w), mode="bilinear", align_corners=False
    )[:, 0]
    flat = up.flatten(1)
    z = (flat - flat.mean(1, keepdim=True)) / flat.std(1, keepdim=True).clamp(min=1e-12)
    return (z > threshold).view(-1, h, w)


def _similarity(guide: Guide, images: torch.Tensor, cls: int) -> torch.Tensor:
    s = guide(images, cls)
    if not isinstance(s, torch.Tensor) or s.shape != (len(images),):
        got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
        raise ValueError(
            f"guide: expected one similarity per image, a tensor of shape ({len(images)},); "
            f"got {got}"
        )
    return s.to(images.dtype)


def _input_shape(size: Any, channels: int | None, example: Any) -> tuple[int, int, int]:
    shape: tuple[int, ...] | None = None
    if example is not None:
        shape = tuple(example.shape[1:]) if isinstance(example, torch.Tensor) else tuple(example)
        if len(shape) != 3:
            raise ValueError(
                f"example: expected a batch [N, C, H, W] or a shape (C, H, W); got {shape}"
            )
    if size is None:
        if shape is None:
            raise ValueError(
                "size: the input size is unknown; pass size= (and channels=) or example="
            )
        h, w = shape[1], shape[2]
    elif isinstance(size, int):
        h = w = size
    else:
        h, w = (int(v) for v in size)
    if channels is None:
        if shape is None:
            raise ValueError("channels: the channel count is unknown; pass channels= or example=")
        channels = shape[0]
    for name, value in (("size", h), ("size", w), ("channels", channels)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected positive integers; got {value!r}")
    return channels, h, w


def _normaliser(
    mean: Sequence[float] | None, std: Sequence[float] | None, c: int, device, dtype
) -> Callable[[torch.Tensor], torch.Tensor]:
    if mean is None and std is None:
        return lambda x: x
    m = torch.as_tensor(0.0 if mean is None else mean, device=device, dtype=dtype).reshape(-1, 1, 1)
    s = torch.as_tensor(1.0 if std is None else std, device=device, dtype=dtype).reshape(-1, 1, 1)
    for name, t in (("mean", m), ("std", s)):
        if t.shape[0] not in (1, c):
            raise ValueError(
                f"{name}: expected 1 or {c} values (one per channel); got {t.shape[0]}"
            )
    if bool((s <= 0).any()):
        raise ValueError("std: expected positive values")
    return lambda x: (x - m) / s


@contextlib.contextmanager
def _layer_output(sub: nn.Module, name: str) -> Iterator[dict[str, torch.Tensor]]:
    out: dict[str, torch.Tensor] = {}

    def hook(_m: nn.Module, _i: object, value: object) -> None:
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"layer: {name!r} returns {type(value).__name__}, not a tensor")
        out["act"] = value.clone()  # later in-place ops must not change what is optimised

    handle = sub.register_forward_hook(hook)
    try:
        yield out
    finally:
        handle.remove()


def _positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive integer; got {value!r}")
    return value
