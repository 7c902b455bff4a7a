"""Token ids: integer inputs are attributed at an embedding (or any later layer) as Captum's
LayerIntegratedGradients does, with the baseline as token ids (``ia.tokens``) or as an
embedding tensor; results run over ``token, embedding`` with the tokens' text; the
perturbation methods replace tokens by the baseline id; gradients of the ids themselves,
noise on them and paths through them are refused, naming what to do instead."""

from __future__ import annotations

import captum.attr as ca
import numpy as np
import pytest
import torch
from torch import nn

import algebra as ia

VOCAB, PAD = 30, 0


class Classifier(nn.Module):
    """Token ids [N, L] and an attention mask to three scores: embedding, tanh, pooling."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embedding = nn.Embedding(VOCAB, 8, padding_idx=PAD)
        self.position = nn.Parameter(torch.randn(6, 8))
        self.mix = nn.Linear(8, 8)
        self.act = nn.Tanh()
        self.head = nn.Linear(8, 3)

    def forward(self, input_ids, attention_mask=None):
        h = self.act(self.mix(self.embedding(input_ids) + self.position))
        if attention_mask is not None:
            h = h * attention_mask[..., None]
        return self.head(h.sum(1))


@pytest.fixture
def net() -> Classifier:
    return Classifier().double().eval()


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(1, VOCAB, (4, 6), generator=g)
    mask = torch.ones_like(ids)
    ids[1, 4:], mask[1, 4:] = PAD, 0  # padding
    ids[3, 3:], mask[3, 3:] = PAD, 0
    return ids, mask


def test_layer_integrated_gradients_on_the_embedding_equals_captum(
    net, batch, parity64, assert_untouched
):
    ids, mask = batch
    q = ia.model(net).on(ids, forward_kwargs={"attention_mask": mask})
    result = q.layer("embedding").integrated_gradients(2, steps=32, baseline=ia.tokens(PAD))
    result = result.compute()
    assert result.dims == ("sample", "token", "embedding")
    theirs, delta = ia_free_lig(net, ids, mask, torch.full_like(ids, PAD), 2)
    parity64(result, theirs)
    torch.testing.assert_close(torch.from_numpy(result.delta.values), delta, atol=1e-8, rtol=1e-5)
    per_token = result.sum("embedding")
    assert per_token.dims == ("sample", "token")
    assert_untouched(net)


def ia_free_lig(net, ids, mask, baseline, target, layer=None):
    lig = ca.LayerIntegratedGradients(net, layer or net.embedding)
    return lig.attribute(
        ids,
        baselines=baseline,
        target=target,
        n_steps=32,
        additional_forward_args=(mask,),
        return_convergence_delta=True,
    )


def test_token_baselines_given_per_token_or_as_an_embedding(net, batch, parity64):
    ids, mask = batch
    q = ia.model(net).on(ids, forward_kwargs={"attention_mask": mask})
    reference = ids.clone()
    reference[:, 1:-1] = PAD  # keep the first and last tokens, as [CLS] ... [SEP]
    by_ids = q.layer("embedding").integrated_gradients(0, steps=32, baseline=ia.tokens(reference))
    theirs, _ = ia_free_lig(net, ids, mask, reference, 0)
    parity64(by_ids.compute(), theirs)
    # the same baseline given as the embedding's activation there
    with torch.no_grad():
        embedded = net.embedding(reference)
    by_embedding = q.layer("embedding").integrated_gradients(0, steps=32, baseline=embedded)
    assert "baseline=embedding[4, 6, 8]" in repr(by_embedding)
    parity64(by_embedding.compute(), theirs)
    # one embedding for every sample (a padding token's everywhere)
    pad = net.embedding.weight[PAD].detach().expand(6, 8)
    one = q.layer("embedding").integrated_gradients(0, steps=32, baseline=pad).compute()
    parity64(one, ia_free_lig(net, ids, mask, torch.full_like(ids, PAD), 0)[0])
    assert bool(abs(one.delta).max() < 1e-6)


def test_later_layers_and_other_methods_at_the_embedding(net, batch, parity64):
    ids, mask = batch
    q = ia.model(net).on({"input_ids": ids, "attention_mask": mask})  # ids first: attributed
    later = q.layer("mix").integrated_gradients(1, steps=32, baseline=ia.tokens(PAD)).compute()
    theirs, _ = ia_free_lig(net, ids, mask, torch.full_like(ids, PAD), 1, net.mix)
    parity64(later, theirs)
    assert later.dims == ("sample", "token", "embedding")
    times = q.layer("embedding").input_x_gradient(1).compute()
    theirs = ca.LayerGradientXActivation(net, net.embedding).attribute(
        ids, target=1, additional_forward_args=(mask,)
    )
    parity64(times, theirs)


def test_token_text_labels_the_tokens(net, batch):
    ids, mask = batch
    text = [[f"w{i}{j}" for j in range(6)] for i in range(4)]
    q = ia.model(net).on(ids, forward_kwargs={"attention_mask": mask}, tokens=text)
    r = q.layer("embedding").integrated_gradients(0, steps=4).compute()
    assert r.token_text.dims == ("sample", "token")
    assert r.token_text.values[2].tolist() == text[2]
    per_token = r.sum("embedding")
    assert per_token.token_text.values.tolist() == text
    ablated = q.feature_ablation(0, baseline=ia.tokens(PAD)).compute()
    assert ablated.token_text.values.tolist() == text


def test_perturbation_replaces_tokens_by_the_baseline_id(net, batch, parity64):
    ids, mask = batch
    q = ia.model(net).on(ids, forward_kwargs={"attention_mask": mask})
    ablated = q.feature_ablation("all", baseline=ia.tokens(PAD)).compute()
    assert ablated.dims == ("sample", "target", "token")
    for c in range(3):
        theirs = ca.FeatureAblation(net).attribute(
            ids, baselines=PAD, target=c, additional_forward_args=(mask,)
        )
        parity64(ablated.isel(target=c), theirs)
    pairs = torch.tensor([[0, 0, 1, 1, 2, 2]])
    exact = q.shapley(0, groups=pairs, samples="exact", baseline=ia.tokens(PAD)).compute()
    theirs = ca.ShapleyValues(net).attribute(
        ids, baselines=PAD, target=0, feature_mask=pairs, additional_forward_args=(mask,)
    )
    parity64(exact, theirs)


def test_what_token_ids_refuse(net, batch):
    ids, mask = batch
    q = ia.model(net).on(ids, forward_kwargs={"attention_mask": mask})
    with pytest.raises(
        ValueError,
        match=r"saliency: the inputs hold token ids \(input_ids\).*q.layer\('embedding'\)",
    ):
        q.saliency(0)
    with pytest.raises(ValueError, match="integrated_gradients: the inputs hold token ids"):
        q.integrated_gradients(0)
    with pytest.raises(ValueError, match="conductance: it moves the inputs themselves"):
        q.layer("embedding").conductance(0)
    with pytest.raises(ValueError, match="noise: the inputs hold token ids"):
        q.noise(4)
    with pytest.raises(ValueError, match="occlusion: its windows slide over one input's grid"):
        q.occlusion(0, 2, 1)
    with pytest.raises(ValueError, match="baseline: 'input_ids' holds token ids; expected an id"):
        q.layer("embedding").integrated_gradients(0, baseline=0.5)
    with pytest.raises(
        ValueError, match=r"baseline: an embedding baseline of shape \[5\] does not"
    ):
        q.layer("embedding").integrated_gradients(0, baseline=torch.zeros(5, dtype=torch.float64))
    with pytest.raises(ValueError, match="tokens: sample 1 needs 6 strings"):
        ia.model(net).on(ids, tokens=[["a"] * 6, ["a"] * 5, ["a"] * 6, ["a"] * 6])
    with pytest.raises(ValueError, match="ids: expected a token id >= 0"):
        ia.tokens(-2)


def test_a_model_without_an_embedding_module_is_told_so():
    class OneHot(nn.Module):
        def forward(self, ids):
            return nn.functional.one_hot(ids, 5).double().sum(1)

    q = ia.model(OneHot().eval()).on(torch.tensor([[1, 2]]))
    with pytest.raises(ValueError, match=r"the model has no nn\.Embedding"):
        q.input_x_gradient(0)


def test_token_ids_beyond_the_dtypes_exact_integers_are_refused():
    class Big(nn.Module):
        def forward(self, ids):
            return ids.float()

    with pytest.raises(
        ValueError,
        match=r"ids: token id 16777217 cannot be held exactly in the model's torch.float32",
    ):
        ia.model(Big().eval()).on(torch.tensor([[2**24 + 1]]))


def test_token_ids_reach_the_model_unchanged(net, batch):
    ids, mask = batch
    seen = []

    def record(module, args, output):
        seen.append(args[0].clone())

    handle = net.embedding.register_forward_hook(record)
    try:
        q = ia.model(net).on(ids, forward_kwargs={"attention_mask": mask})
        q.layer("embedding").activation().compute()
    finally:
        handle.remove()
    assert seen and all(s.dtype == torch.int64 for s in seen)
    assert torch.equal(seen[0], ids)
    np.testing.assert_array_equal(seen[0].numpy(), ids.numpy())
