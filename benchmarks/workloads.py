"""The named workloads: which attributions each request asks for, on how many images."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .models import MODELS, NUM_CLASSES

GIB = 1 << 30


@dataclass(frozen=True)
class Workload:
    """One benchmark session of attribution requests on one batch of images.

    ``mixed`` workloads ask for saliency (abs), input-x-gradient and GradCAM on ``block3``
    (ReLU, bilinear upsampling to 32x32) for all classes, plus integrated gradients; the
    others ask for integrated gradients only. ``ig_target`` is ``"top2"`` (the two highest
    logits of each sample) or ``"pred"``. A ``single`` workload asks for one method
    (``"saliency"`` or ``"grad_cam"``) of the prediction and nothing else; with ``memo``,
    ours asks it again of a session that already holds it (a memo hit).
    """

    name: str
    description: str
    images: int
    ig_steps: int
    ig_target: str = "top2"
    mixed: bool = True
    # Bytes; ours runs under ia.set_options(memory_budget=...) and must peak below it.
    memory_budget: int | None = None
    # Rows per pass of Captum's IG (its internal_batch_size) and of the floor's chunked loop.
    chunk_rows: int | None = None
    single: str | None = None
    memo: bool = False
    model: str = "cnn3"  # a key of models.MODELS, which also gives the image size

    @property
    def image_size(self) -> int:
        """Height and width of the workload's images."""
        return MODELS[self.model][1]

    @property
    def ig_targets(self) -> int:
        """Targets per sample of the integrated-gradients request."""
        return 2 if self.ig_target == "top2" else 1

    @property
    def attributions(self) -> int:
        """Attribution maps produced: samples x targets, summed over the requests."""
        if self.single:
            return self.images
        per_sample = self.ig_targets + (3 * NUM_CLASSES if self.mixed else 0)
        return self.images * per_sample


@dataclass(frozen=True)
class ScaleOut:
    """The same expressions in process and on dask (``benchmarks/scaleout.py``).

    ``saliency`` for every class (``all``: 10 maps per image) or for ``pred``, plus
    integrated gradients of ``pred`` with ``ig_steps`` steps (none when 0), on ``images``
    images; dask runs them on a LocalCluster of ``workers`` single-threaded processes and
    on the local ``threads`` scheduler.
    """

    name: str
    description: str
    images: int
    ig_steps: int
    saliency: str = "all"
    workers: int = 2

    @property
    def attributions(self) -> int:
        """Attribution maps produced: samples x targets, summed over the requests."""
        per_sample = (NUM_CLASSES if self.saliency == "all" else 1) + (1 if self.ig_steps else 0)
        return self.images * per_sample


WORKLOADS: dict[str, Workload | ScaleOut] = {
    w.name: w
    for w in (
        Workload(
            "mixed32",
            "32 images: saliency, input-x-gradient, GradCAM(block3) x 10 classes; "
            "IG (32 steps) x top-2",
            images=32,
            ig_steps=32,
        ),
        Workload(
            "mixed1",
            "mixed32's requests on 1 image (interactive latency)",
            images=1,
            ig_steps=32,
        ),
        Workload(
            "ig1024",
            "64 images: IG (1024 steps) x pred under a 1 GiB memory budget",
            images=64,
            ig_steps=1024,
            ig_target="pred",
            mixed=False,
            memory_budget=GIB,
            chunk_rows=2048,
        ),
        Workload(
            "single_saliency",
            "8 images 64x64, 41 MiB CNN: saliency of the prediction, a new query",
            images=8,
            ig_steps=0,
            mixed=False,
            single="saliency",
            model="wide41",
        ),
        Workload(
            "single_gradcam",
            "8 images 64x64, 41 MiB CNN: GradCAM(block3) of the prediction, a new query",
            images=8,
            ig_steps=0,
            mixed=False,
            single="grad_cam",
            model="wide41",
        ),
        Workload(
            "memo146",
            "8 images 64x64, 146 MB CNN: saliency of the prediction asked again (ours: a "
            "memo hit; Captum and the floor compute it)",
            images=8,
            ig_steps=0,
            mixed=False,
            single="saliency",
            memo=True,
            model="wide146",
        ),
        ScaleOut(
            "scaleout",
            "512 images: saliency x 10 classes, IG (16 steps) x pred; in process vs dask",
            images=512,
            ig_steps=16,
        ),
        ScaleOut(
            "dasksmall",
            "8 images: saliency x pred (interactive latency); the dask path's overhead",
            images=8,
            ig_steps=0,
            saliency="pred",
        ),
    )
}

# Smaller sizes for a smoke run (--quick); the requests stay the same.
_QUICK = {"ig1024": {"ig_steps": 128}, "scaleout": {"images": 128}}


def select(names: list[str] | None, quick: bool = False) -> list[Workload | ScaleOut]:
    """The workloads to run, in the order given (all of them when ``names`` is empty).

    Parameters
    ----------
    names : list of str or None
        Workload names; ``None`` or empty selects every workload.
    quick : bool
        Use the smaller ``--quick`` sizes.

    Returns
    -------
    list of Workload or ScaleOut

    Raises
    ------
    ValueError
        For an unknown name.
    """
    unknown = [n for n in names or [] if n not in WORKLOADS]
    if unknown:
        raise ValueError(
            f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}"
        )
    chosen = [WORKLOADS[n] for n in names] if names else list(WORKLOADS.values())
    return [replace(w, **_QUICK.get(w.name, {})) if quick else w for w in chosen]
