"""A CLIP-style text-image guide for :func:`~algebra.kernels.visualize.visualize`.

The guide scores each image against a class by the cosine similarity between its image
embedding and t̄_c, the mean of the L2-normalised text embeddings of the class name in a
set of prompt templates. :func:`open_clip_guide` builds one from a local open_clip
checkpoint (open_clip is an optional extra; nothing is downloaded).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

TEMPLATES = (
    "a photo of a {}.",
    "a picture of a {}.",
    "an image of a {}.",
    "a close-up photo of a {}.",
    "a blurry photo of a {}.",
    "a bright photo of a {}.",
    "a dark photo of a {}.",
    "a low resolution photo of a {}.",
    "a cropped photo of a {}.",
    "a drawing of a {}.",
    "a sketch of a {}.",
    "a painting of a {}.",
    "a rendering of a {}.",
    "a photo of the small {}.",
    "a photo of the large {}.",
    "a good photo of the {}.",
)

# open_clip's defaults when a model does not carry its own preprocessing statistics.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class TextImageGuide:
    """Callable ``guide(images [B, C, H, W] in [0, 1], cls) -> similarity [B]``.

    Images are brought to the encoder's size (bilinear), to three channels (grey images
    repeated) and normalised with ``mean``/``std``, all differentiably. Class text
    embeddings are computed once per class, without gradients. ``class_names=None`` makes
    a guide that must get its names from :meth:`with_classes` before it scores anything
    (a model's class names, say).
    """

    def __init__(
        self,
        encode_image: Callable[[torch.Tensor], torch.Tensor],
        encode_text: Callable[[Any], torch.Tensor],
        tokenize: Callable[[list[str]], Any],
        class_names: Sequence[str] | None,
        templates: Sequence[str] = TEMPLATES,
        image_size: int | Sequence[int] = 224,
        mean: Sequence[float] = CLIP_MEAN,
        std: Sequence[float] = CLIP_STD,
    ):
        if class_names is not None and (
            isinstance(class_names, str)
            or not len(class_names)
            or not all(isinstance(c, str) for c in class_names)
        ):
            raise ValueError("class_names: expected one name per class (a list of strings)")
        if not templates or any("{}" not in t for t in templates):
            raise ValueError("templates: expected prompt templates, each with a '{}' for the name")
        self.encode_image, self.encode_text, self.tokenize = encode_image, encode_text, tokenize
        self.class_names = None if class_names is None else list(class_names)
        self.templates = list(templates)
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        self.size = (int(size[0]), int(size[1]))
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)
        self._text: dict[int, torch.Tensor] = {}

    def with_classes(self, class_names: Sequence[str]) -> TextImageGuide:
        """The same encoders with ``class_names`` (text embeddings are computed afresh).

        Examples
        --------
        >>> g = TextImageGuide(lambda x: x, lambda t: t, lambda s: torch.ones(len(s), 2), None)
        >>> g.with_classes(["cat", "dog"]).class_names
        ['cat', 'dog']
        """
        return TextImageGuide(
            self.encode_image,
            self.encode_text,
            self.tokenize,
            class_names,
            self.templates,
            self.size,
            tuple(self.mean.flatten().tolist()),
            tuple(self.std.flatten().tolist()),
        )

    def text_embedding(self, cls: int) -> torch.Tensor:
        """t̄_c: the mean of the normalised text embeddings of class ``cls``'s prompts.

        Examples
        --------
        >>> g = TextImageGuide(lambda x: x.flatten(1)[:, :2], lambda t: t, lambda s: torch.ones(len(s), 2), ["zero"])
        >>> g.text_embedding(0)
        tensor([0.7071, 0.7071])
        """
        if self.class_names is None:
            raise ValueError(
                "guide: it has no class names to build prompts from; give them to "
                "ia.guides.open_clip(classes=...) or to the model (ia.model(classes=...))"
            )
        if not 0 <= cls < len(self.class_names):
            raise ValueError(
                f"cls: class {cls} has no name; the guide knows {len(self.class_names)} classes"
            )
        if cls not in self._text:
            prompts = [t.format(self.class_names[cls]) for t in self.templates]
            with torch.no_grad():
                text = self.encode_text(self.tokenize(prompts)).float()
            self._text[cls] = nn.functional.normalize(text, dim=-1).mean(0)
        return self._text[cls]

    def __call__(self, images: torch.Tensor, cls: int) -> torch.Tensor:
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        x = nn.functional.interpolate(images, size=self.size, mode="bilinear", align_corners=False)
        x = (x - self.mean.to(x)) / self.std.to(x)
        embedding = nn.functional.normalize(self.encode_image(x).float(), dim=-1)
        text = self.text_embedding(int(cls)).to(embedding.device)
        return embedding @ text / text.norm().clamp(min=1e-12)


def open_clip_guide(
    name: str,
    checkpoint_path: str | os.PathLike,
    class_names: Sequence[str] | None,
    *,
    templates: Sequence[str] = TEMPLATES,
    device: str | torch.device | None = None,
) -> TextImageGuide:
    """A guide from a local open_clip checkpoint (model ``name``, e.g. ``"ViT-B-32"``).

    ``class_names=None`` leaves the names to :meth:`TextImageGuide.with_classes`.

    Needs the optional extra: ``pip install 'ialgebra[clip]'`` (open_clip_torch).

    Examples
    --------
    >>> try:  # without open_clip: ImportError; with it, this file does not exist
    ...     open_clip_guide("ViT-B-32", "no-such-clip.pt", ["cat"])
    ... except (ImportError, FileNotFoundError) as err:
    ...     print(str(err).split(":")[0])
    guide
    """
    try:
        import open_clip
    except ImportError as err:
        raise ImportError(
            "guide: open_clip is not installed; install the optional extra with "
            "pip install 'ialgebra[clip]' (it provides open_clip_torch), then pass a local "
            "checkpoint file: nothing is downloaded"
        ) from err
    if not os.path.isfile(checkpoint_path):
        raise FileNotFoundError(
            f"guide: checkpoint_path: no file at {os.fspath(checkpoint_path)!r}; pass a local open_clip "
            "checkpoint (nothing is downloaded)"
        )
    model, _, _ = open_clip.create_model_and_transforms(name, pretrained=os.fspath(checkpoint_path))
    model = model.to(device or "cpu").eval()
    for p in model.parameters():
        p.requires_grad_(False)
    tokenizer = open_clip.get_tokenizer(name)
    visual = getattr(model, "visual", None)
    dev = device or "cpu"
    return TextImageGuide(
        lambda x: model.encode_image(x.to(dev)),
        model.encode_text,
        lambda prompts: tokenizer(prompts).to(dev),
        class_names,
        templates,
        image_size=getattr(visual, "image_size", 224),
        mean=getattr(visual, "image_mean", None) or CLIP_MEAN,
        std=getattr(visual, "image_std", None) or CLIP_STD,
    )
