"""The built-in demo (``make demo``): train a small CNN on scikit-learn's digits and query it.

Run it with ``python -m algebra.cli.demo``. It needs scikit-learn (``pip install ialgebra[demo]``).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import xarray as xr
from torch import nn

import algebra as ia


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The 8x8 digits shipped with scikit-learn as images ``[N, 1, 8, 8]`` in [0, 1] and labels.

    Examples
    --------
    >>> x, y = digits()
    >>> tuple(x.shape), int(y.max())
    ((1797, 1, 8, 8), 9)
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the demo needs scikit-learn: pip install 'ialgebra[demo]'") from err
    data = load_digits()
    images = torch.tensor(data.images, dtype=torch.float32)[:, None] / 16.0
    return images, torch.tensor(data.target)


def small_cnn() -> nn.Sequential:
    """A 2-block CNN for 1x8x8 images and 10 classes; its blocks are named ``b1``, ``b2``.

    Examples
    --------
    >>> small_cnn()(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    """

    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU())

    return nn.Sequential(
        OrderedDict(
            b1=block(1, 16),
            pool=nn.MaxPool2d(2),
            b2=block(16, 32),
            flat=nn.Flatten(),
            head=nn.Linear(32 * 4 * 4, 10),
        )
    )


def train(net: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int = 4) -> float:
    """Train ``net`` with Adam on ``(x, y)``; return the training accuracy.

    Examples
    --------
    >>> x, y = digits()
    >>> torch.manual_seed(0) is not None and train(small_cnn(), x[:200], y[:200], epochs=1) >= 0
    True
    """
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    net.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(x)).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x[batch]), y[batch]).backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        return float((net(x).argmax(1) == y).float().mean())


def main() -> None:
    """Train the model, build a chained query, print its plan and the labelled results.

    Examples
    --------
    >>> main()
    trained a small CNN on scikit-learn digits: train accuracy ...
    plan: 3 expressions on 1 batch of inputs
    ...
    """
    torch.manual_seed(0)
    x, y = digits()
    train_x, train_y, test_x, test_y = x[:1500], y[:1500], x[1500:], y[1500:]
    net = small_cnn()
    accuracy = train(net, train_x, train_y)
    print(f"trained a small CNN on scikit-learn digits: train accuracy {accuracy:.3f}\n")

    model = ia.model(net, name="digits-cnn", classes=[str(i) for i in range(10)])
    q = model.on(test_x[:8], labels=test_y[:8])
    exprs = {
        "ig_pred": q.integrated_gradients("pred", steps=32),
        "saliency_top2": q.saliency(ia.topk(2)),
        "b2_grad_x_act": q.layer("b2").input_x_gradient("label"),
    }
    print("expressions (lazy: nothing has run yet)")
    for name, expr in exprs.items():
        print(f"  {name}: {expr}")
    print("\n" + ia.explain(exprs) + "\n")
    results = ia.compute(exprs)
    with xr.set_options(display_expand_data=False, display_width=100):
        for name, result in results.items():
            print(f"--- {name}\n{result}\n")
    ig = results["ig_pred"]
    with torch.no_grad():
        logits = net(test_x[:8]) - net(torch.zeros_like(test_x[:8]))
    gap = logits.gather(1, torch.as_tensor(ig["class"].values)[:, None])[:, 0]
    print("completeness of integrated gradients: sum of attributions vs f(x) - f(baseline)")
    table = ig.sum(["channel", "y", "x"]).to_dataframe(name="sum_of_attributions")
    table["f(x) - f(0)"] = gap.numpy()
    print(table[["pred", "label", "sum_of_attributions", "f(x) - f(0)"]].round(3).to_string())


if __name__ == "__main__":
    main()
