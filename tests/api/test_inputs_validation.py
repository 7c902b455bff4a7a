"""Bad input to several inputs, token ids and forward arguments: each a clear error naming
the argument, raised when the query or the expression is built; and what such queries do
not support yet, refused with a message that says so."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import algebra as ia


class Pair(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)
        self.fc = nn.Linear(2 * 4 * 4 + 5, 3)

    def forward(self, image, values, weight=None):
        h = torch.cat([torch.relu(self.conv(image)).flatten(1), values], 1)
        out = self.fc(h)
        return out if weight is None else out * weight[:, None]


@pytest.fixture
def net() -> Pair:
    torch.manual_seed(0)
    return Pair().eval()


@pytest.fixture
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.rand(4, 3, 4, 4), torch.rand(4, 5)


def test_inputs_of_different_lengths_name_the_input(net, pair):
    image, values = pair
    with pytest.raises(
        ValueError, match=r"inputs: 'values' has 3 samples \(its first dim\), but 'image' has 4"
    ):
        ia.model(net).on((image, values[:3]))
    with pytest.raises(ValueError, match=r"labels: expected 4 labels"):
        ia.model(net).on((image, values), labels=[0, 1])
    with pytest.raises(ValueError, match="ids: expected 4 ids"):
        ia.model(net).on((image, values), ids=[1, 2])


def test_dict_keys_are_the_forwards_arguments(net, pair):
    image, values = pair
    with pytest.raises(
        ValueError,
        match=r"inputs: 'valeus' is not an argument of forward\(image, values, weight=None\). Did you mean 'values'\?",
    ):
        ia.model(net).on({"image": image, "valeus": values})
    with pytest.raises(
        ValueError,
        match=r"inputs: forward\(image, values, weight=None\) needs 'values'; given: 'image'",
    ):
        ia.model(net).on({"image": image})
    with pytest.raises(
        ValueError,
        match=r"inputs: forward\(image, values, weight=None\) takes 3 positional inputs; got 4",
    ):
        ia.model(net).on((image, values, values, values))
    with pytest.raises(TypeError, match="inputs: dict keys name the forward's arguments; got 0"):
        ia.model(net).on({0: image})


def test_a_forward_with_var_keywords_takes_any_key():
    class Loose(nn.Module):
        def forward(self, **inputs):
            return sum(v.sum(1, keepdim=True) for v in inputs.values()).repeat(1, 2)

    q = ia.model(Loose().eval()).on({"a": torch.rand(2, 3), "b": torch.rand(2, 4)})
    assert sorted(q.saliency(0).compute()) == ["a", "b"]


def test_tensors_are_checked_per_input(net, pair):
    image, values = pair
    with pytest.raises(
        TypeError,
        match=r"inputs\[1\]: dtype torch.float64 does not match the model's torch.float32",
    ):
        ia.model(net).on((image, values.double()))
    bad = values.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"inputs\['values'\]: 1 value\(s\) are NaN or infinite"):
        ia.model(net).on({"image": image, "values": bad})
    with pytest.raises(
        TypeError, match=r"inputs\[1\]: expected a torch.Tensor of shape \[N, ...\]; got str"
    ):
        ia.model(net).on((image, "values"))
    with pytest.raises(ValueError, match="inputs: the tuple holds no input"):
        ia.model(net).on(())
    with pytest.raises(TypeError, match="batch_size: only for a torch Dataset"):
        ia.model(net).on((image, values), batch_size=2)


def test_attribute_names_inputs(net, pair):
    image, values = pair
    with pytest.raises(
        ValueError,
        match=r"attribute: 'valus' is not one of the inputs \('image', 'values'\). Did you mean 'values'\?",
    ):
        ia.model(net).on((image, values), attribute="valus")
    with pytest.raises(ValueError, match="attribute: position 2 is out of range for 2 inputs"):
        ia.model(net).on((image, values), attribute=2)
    with pytest.raises(ValueError, match="attribute: expected at least one input"):
        ia.model(net).on((image, values), attribute=())


def test_dims_per_input(net, pair):
    image, values = pair
    with pytest.raises(
        ValueError,
        match=r"dims: input 'values' has per-sample shape \[5\], which needs 1 dim names",
    ):
        ia.model(net).on((image, values), dims=(None, ("a", "b")))
    with pytest.raises(ValueError, match="dims: 'valus' is not an input"):
        ia.model(net).on({"image": image, "values": values}, dims={"valus": ("f",)})
    with pytest.raises(ValueError, match="dims: names must be unique and not 'sample'"):
        ia.model(net).on((image, values), dims=(None, ("sample",)))


def test_baselines_per_input(net, pair):
    image, values = pair
    q = ia.model(net).on((image, values))
    with pytest.raises(
        ValueError,
        match=r"baseline: expected 2 values, one per attributed input \(image, values\); got 3",
    ):
        q.integrated_gradients(0, baseline=(0.0, 0.0, 0.0))
    with pytest.raises(
        ValueError,
        match=r"baseline: 'valus' is not an attributed input \(image, values\). Did you mean 'values'\?",
    ):
        q.integrated_gradients(0, baseline={"valus": 1.0})
    with pytest.raises(
        ValueError,
        match=r"baseline of 'values': shape \[3\] does not broadcast to 'values''s \[4, 5\]",
    ):
        q.integrated_gradients(0, baseline=(0.0, torch.zeros(3)))
    with pytest.raises(ValueError, match="baseline: one tensor for 2 attributed inputs"):
        q.integrated_gradients(0, baseline=torch.zeros(4, 5))
    with pytest.raises(TypeError, match="baseline: another query's inputs cannot be the baseline"):
        q.integrated_gradients(0, baseline=ia.model(net).on((image, values)))
    with pytest.raises(ValueError, match="baselines: 'values' has 2 references, but 'image' has 3"):
        q.deeplift_shap(0, (torch.zeros(3, 3, 4, 4), torch.zeros(2, 5)))
    with pytest.raises(
        ValueError, match=r"baselines of 'values': expected a tensor \[B, 5\] of references"
    ):
        q.gradient_shap(0, (torch.zeros(3, 3, 4, 4), torch.zeros(3, 4)))
    with pytest.raises(ValueError, match=r"noise of 'values': expected finite draws \[S, N, 5\]"):
        q.noise(noise=(torch.zeros(2, 4, 3, 4, 4), torch.zeros(2, 4, 4)))
    with pytest.raises(ValueError, match="noise: no value for 'values'"):
        q.noise(noise={"image": torch.zeros(2, 4, 3, 4, 4)})


def test_what_several_inputs_do_not_support_yet(net, pair):
    image, values = pair
    q = ia.model(net).on((image, values), forward_kwargs={"weight": torch.ones(4)})
    unsupported = {
        "window: a query on several inputs": lambda: q.window(0, 2, 0, 2),
        "edit: a query on several inputs": lambda: q.patch((0, 2, 0, 2), 0.0),
        "other: anti-joins of queries on several inputs": lambda: q.antijoin(q, 0),
        "occlusion: its windows slide": lambda: q.occlusion(0, 2, 1),
        "score_cam: its map lies on the inputs' grid": lambda: q.layer("conv").score_cam(0),
        "guided_grad_cam: its map lies on the inputs' grid": lambda: q.layer(
            "conv"
        ).guided_grad_cam(0),
        "upsample: the map is resized to the inputs' grid": lambda: q.layer("conv").grad_cam(0),
        "gradient_shap: its baselines are evaluated once": lambda: q.gradient_shap(
            0, (torch.zeros(2, 3, 4, 4), torch.zeros(2, 5))
        ),
        "attr: metrics perturb one input tensor": lambda: q.saliency(0)[0].deletion(),
    }
    for message, build in unsupported.items():
        with pytest.raises(ValueError, match=message):
            build()
    with pytest.raises(ValueError, match="to_query: a model on several inputs"):
        q.layer("conv").saliency(0).to_query()
    with pytest.raises(ValueError, match="to_query: the attribution of one of several inputs"):
        q.saliency(0)[0].to_query()
    with pytest.raises(
        TypeError,
        match=r"exprs: argument 0 is a AttributionTuple \(one per input: pass ia.compute\(\*a\)",
    ):
        ia.compute(q.saliency(0))


def test_windows_and_grad_cam_at_a_layer_still_work(net, pair):
    image, values = pair
    q = ia.model(net).on((image, values))
    r = q.layer("conv").window(0, 2, 0, 2).saliency(0).compute()
    assert r.dims == ("sample", "channel", "y", "x") and float(abs(r[:, :, 2:, :]).max()) == 0
    assert q.layer("conv").grad_cam(0, upsample=False).compute().dims == ("sample", "y", "x")


def test_more_samples_than_a_half_precision_index_can_number_are_refused(net):
    # bfloat16 holds every integer only up to 256: rows past it would read another sample's
    # inputs and forward arguments, so such a batch is refused when the query is built.
    half = net.to(torch.bfloat16)
    images, values = torch.rand(300, 3, 4, 4), torch.rand(300, 5)
    inputs = (images.to(torch.bfloat16), values.to(torch.bfloat16))
    with pytest.raises(ValueError, match=r"inputs: 300 samples cannot be numbered exactly"):
        ia.model(half).on(inputs)
    small = ia.model(half).on(tuple(t[:257] for t in inputs))  # indices 0..256: exact
    assert small.saliency(0)[0].compute().sizes["sample"] == 257
