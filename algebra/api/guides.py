"""``ia.guides``: text-image scorers that steer :meth:`Model.visualize` towards a class.

A guide is any callable ``guide(images, cls) -> similarity``: a batch of images
``[B, C, H, W]`` in [0, 1] (differentiable) and a class index in, one similarity per image
``[B]`` out. The reference uses CLIP: the cosine similarity between each image's embedding
and the mean embedding of the class name in ~16 prompt templates ("a photo of a {}.").
Nothing is downloaded: :func:`open_clip` reads a local checkpoint, and :func:`text_image`
wraps any CLIP-like model already loaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..kernels.clip_guide import (
    CLIP_MEAN,
    CLIP_STD,
    TEMPLATES,
    TextImageGuide,
    open_clip_guide,
)

__all__ = ["TEMPLATES", "TextImageGuide", "open_clip", "text_image"]


def open_clip(
    name: str,
    checkpoint_path: str | os.PathLike,
    classes: Sequence[str] | None = None,
    *,
    templates: Sequence[str] = TEMPLATES,
    device: str | torch.device | None = None,
) -> TextImageGuide:
    """A guide from a local open_clip checkpoint (the optional extra ``ialgebra[clip]``).

    Parameters
    ----------
    name : str
        The open_clip model name, e.g. ``"ViT-B-32"``.
    checkpoint_path : str or path
        A local checkpoint file (nothing is downloaded).
    classes : list of str, optional
        The class names to build prompts from; by default :meth:`Model.visualize` gives
        the model's class names (``ia.model(net, classes=...)``).
    templates : list of str
        Prompt templates, each with a ``{}`` for the class name.
    device : str or torch.device, optional
        Where the CLIP model runs (default: CPU).

    Returns
    -------
    TextImageGuide
        ``guide(images, cls) -> [B]`` cosine similarities.

    Raises
    ------
    ImportError
        Without open_clip; the message says how to install the extra.
    FileNotFoundError
        When ``checkpoint_path`` is no file.

    Examples
    --------
    >>> import algebra as ia
    >>> try:  # without open_clip: ImportError; with it, this file does not exist
    ...     ia.guides.open_clip("ViT-B-32", "no-such-clip.pt")
    ... except (ImportError, FileNotFoundError) as err:
    ...     print(str(err).split(":")[0])
    guide
    """
    if not isinstance(name, str):
        raise TypeError(f"name: expected an open_clip model name (str); got {name!r}")
    return open_clip_guide(name, checkpoint_path, classes, templates=templates, device=device)


def text_image(
    encode_image: Callable[[torch.Tensor], torch.Tensor],
    encode_text: Callable[[Any], torch.Tensor],
    tokenize: Callable[[list[str]], Any],
    classes: Sequence[str] | None = None,
    *,
    templates: Sequence[str] = TEMPLATES,
    image_size: int | Sequence[int] = 224,
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
) -> TextImageGuide:
    """A guide from any CLIP-like model: its image encoder, text encoder and tokenizer.

    Images are resized to ``image_size``, made three-channel and normalised with
    ``mean``/``std`` before ``encode_image``; the class's text embedding is the mean of
    the normalised embeddings of its prompts, computed once per class.

    Parameters
    ----------
    encode_image : callable
        ``[B, 3, H, W]`` normalised images -> ``[B, E]`` embeddings (differentiable).
    encode_text : callable
        Tokens -> ``[P, E]`` embeddings.
    tokenize : callable
        A list of prompts -> tokens.
    classes : list of str, optional
        Class names (default: the model's, given by :meth:`Model.visualize`).
    templates, image_size, mean, std
        Prompt templates and the encoder's input size and statistics.

    Returns
    -------
    TextImageGuide

    Examples
    --------
    >>> import torch, algebra as ia
    >>> red = ia.guides.text_image(lambda x: x.mean((2, 3)), lambda t: t,
    ...                            lambda prompts: torch.tensor([[1.0, 0.0, 0.0]] * len(prompts)),
    ...                            ["red"], image_size=4, mean=(0, 0, 0), std=(1, 1, 1))
    >>> images = torch.zeros(2, 3, 4, 4)
    >>> images[0, 0] = 1.0  # a red image, and a black one
    >>> [round(s, 2) for s in red(images + 0.01, 0).tolist()]
    [1.0, 0.58]
    """
    for argument, fn in (
        ("encode_image", encode_image),
        ("encode_text", encode_text),
        ("tokenize", tokenize),
    ):
        if not callable(fn):
            raise TypeError(f"{argument}: expected a callable; got {type(fn).__name__}")
    return TextImageGuide(
        encode_image, encode_text, tokenize, classes, templates, image_size, mean, std
    )
