"""Language models: next-token attribution (``position=-1``), targets at a position
(``ia.at``) and generation steps (``q.generated``), equal to Captum within 1e-5 on a small
GPT-like causal model in float64, fused into one forward and one batched backward; GPT-2
from a ``transformers`` config when that library is installed."""

from __future__ import annotations

import captum.attr as ca
import numpy as np
import pytest
import torch
from torch import nn

import algebra as ia
from algebra.kernels.generation import appended, greedy

VOCAB, WIDTH, LENGTH = 11, 8, 5


class OneHotEmbedding(nn.Module):
    """Token rows (one-hot ``[N, L, V]``) to embeddings: a lookup written as a product, so
    the prompt is a float input and the embeddings a layer."""

    def __init__(self, weight: nn.Parameter):
        super().__init__()
        self.weight = weight

    def forward(self, onehot):
        return onehot @ self.weight


class TinyGPT(nn.Module):
    """Token and position embeddings, one causal self-attention block, a language head."""

    def __init__(self, causal: bool = True):
        super().__init__()
        torch.manual_seed(0)
        self.wte = OneHotEmbedding(nn.Parameter(torch.randn(VOCAB, WIDTH)))
        self.wpe = nn.Parameter(0.1 * torch.randn(16, WIDTH))
        self.ln = nn.LayerNorm(WIDTH)
        self.attn = nn.MultiheadAttention(WIDTH, 2, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(WIDTH, 16), nn.GELU(), nn.Linear(16, WIDTH))
        self.head = nn.Linear(WIDTH, VOCAB)
        self.causal = causal

    def forward(self, onehot):
        length = onehot.shape[1]
        h = self.wte(onehot) + self.wpe[:length]
        mask = torch.ones(length, length, dtype=torch.bool).triu(1) if self.causal else None
        a = self.ln(h)
        h = h + self.attn(a, a, a, attn_mask=mask, need_weights=False)[0]
        h = h + self.mlp(self.ln(h))
        return {"logits": self.head(h), "hidden": h}


@pytest.fixture
def lm():
    return TinyGPT().double().eval()


@pytest.fixture
def prompts():
    ids = torch.randint(0, VOCAB, (3, LENGTH), generator=torch.Generator().manual_seed(1))
    return nn.functional.one_hot(ids, VOCAB).double()


def _at(lm, position):
    return lambda x: lm(x)["logits"][:, position]


def test_next_token_attribution_equals_captum(lm, prompts, parity64):
    q = ia.model(lm, output="logits", position=-1).on(prompts)
    sal, ig, emb = ia.compute(
        q.saliency("pred", abs=False),
        q.integrated_gradients(ia.classes([1, 4]), steps=24),
        q.layer("wte").integrated_gradients("pred", steps=24),
    )
    assert sal.dims == ("sample", "dim_1", "dim_2")
    pred = lm(prompts)["logits"][:, -1].argmax(1)
    assert (sal.pred.values == pred.numpy()).all()
    parity64(sal, ca.Saliency(_at(lm, -1)).attribute(prompts.clone(), target=pred, abs=False))
    for c in (1, 4):
        theirs = ca.IntegratedGradients(_at(lm, -1)).attribute(
            prompts.clone(), target=c, n_steps=24
        )
        parity64(ig.sel(target=c), theirs)
    theirs, delta = ca.LayerIntegratedGradients(_at(lm, -1), lm.wte).attribute(
        prompts.clone(), target=pred, n_steps=24, return_convergence_delta=True
    )
    parity64(emb, theirs)
    parity64(emb.delta, delta)  # the same completeness gap as Captum's
    per_token = emb.sum("dim_2")  # one score per token of the prompt
    assert per_token.dims == ("sample", "dim_1")


def test_targets_at_a_position(lm, prompts, parity64):
    q = ia.model(lm).on(prompts)
    last, two = ia.compute(
        q.saliency(ia.at(-1, [2, 5]), abs=False), q.integrated_gradients(ia.at(2, 7), steps=16)
    )
    assert last.dims == ("sample", "target", "dim_1", "dim_2")
    assert last["class"].values.tolist() == [2, 5] and int(last.position) == LENGTH - 1
    for c in (2, 5):
        theirs = ca.Saliency(_at(lm, -1)).attribute(prompts.clone(), target=c, abs=False)
        parity64(last.sel(target=c), theirs)
    theirs = ca.IntegratedGradients(_at(lm, 2)).attribute(prompts.clone(), target=7, n_steps=16)
    parity64(two, theirs)
    assert float(abs(two.isel(dim_1=slice(3, None))).max()) == 0  # causal: later tokens are 0
    # the pred column reads the position explained
    assert (two.pred.values == lm(prompts)["logits"][:, 2].argmax(1).numpy()).all()
    words = [f"w{i}" for i in range(VOCAB)]
    named = ia.model(lm, classes=words).on(prompts).saliency(ia.at(-2, [0, 9])).compute()
    assert named.class_name.values.tolist() == ["w0", "w9"]
    with pytest.raises(ValueError, match="classes: 3 class names were given, but the model has 11"):
        ia.model(lm, classes=words[:3]).on(prompts).saliency(ia.at(-2, 0))


def test_targets_at_several_positions_share_one_backward(lm, prompts, counting, passes):
    counted = counting(lm)
    q = ia.model(counted).on(prompts)
    exprs = [q.saliency(ia.at(-1, [1, 2])), q.input_x_gradient(ia.at(1, 3))]
    _, counts, totals = passes(counted, exprs)
    assert counts == totals == (1, 3, 1)


def _greedy(lm, prompts, steps):
    x, chosen = prompts, []
    for _ in range(steps):
        token = lm(x)["logits"][:, -1].argmax(-1)
        chosen.append(token)
        x = torch.cat([x, nn.functional.one_hot(token, VOCAB).double()[:, None]], 1)
    return torch.stack(chosen, 1), x[:, :-1]


def test_generation_steps_equal_captum(lm, prompts, parity64):
    steps = 3
    tokens, inputs = _greedy(lm, prompts, steps)
    g = ia.model(lm, position=-1).on(prompts).generated(steps=steps)
    sal, emb = ia.compute(
        g.saliency("generated", abs=False),
        g.layer("wte").integrated_gradients("generated", steps=16),
    )
    assert sal.dims == ("sample", "step", "dim_1", "dim_2")
    assert emb.dims == ("sample", "step", "dim_1", "dim_2") and emb.sizes["dim_2"] == WIDTH
    assert (sal["class"].values == tokens.numpy()).all()
    assert sal.position.values.tolist() == list(range(LENGTH - 1, LENGTH - 1 + steps))
    for s in range(steps):
        read = _at(lm, LENGTH - 1 + s)
        theirs = ca.Saliency(read).attribute(inputs.clone(), target=tokens[:, s], abs=False)
        parity64(sal.sel(step=s), theirs)
        theirs = ca.LayerIntegratedGradients(read, lm.wte).attribute(
            inputs.clone(), target=tokens[:, s], n_steps=16
        )
        parity64(emb.sel(step=s), theirs)
        # a step reads the prompt and the tokens before it, nothing after
        assert not abs(sal.sel(step=s).isel(dim_1=slice(LENGTH + s, None))).any()


def test_generation_steps_are_one_forward_and_one_backward(lm, prompts, counting, passes):
    counted = counting(lm)
    g = ia.model(counted).on(prompts).generated(steps=4)  # generation runs here, eagerly
    exprs = [g.saliency("generated"), g.layer("net.wte").input_x_gradient("generated")]
    results, counts, totals = passes(counted, exprs)
    assert counts == totals == (1, 3, 1)
    assert results[0].sizes["step"] == 4


def test_generation_through_the_engine(lm, prompts):
    g = ia.model(lm, output="logits").on(prompts).generated(steps=2)
    noisy = g.noise(3, seed=0).saliency("generated").compute()
    assert noisy.dims == ("sample", "step", "noise", "dim_1", "dim_2")
    ablation = g.feature_ablation("generated", groups=ia.grid(LENGTH + 1, 1)).compute()
    assert ablation.dims == ("sample", "step", "dim_1", "dim_2")
    whole = g.layer("wte").integrated_gradients("generated", steps=8).compute(session=ia.Session())
    with ia.set_options(memory_budget=40_000):
        assert (
            "chunks of up to" in g.layer("wte").integrated_gradients("generated", steps=8).explain()
        )
        chunked = (
            g.layer("wte").integrated_gradients("generated", steps=8).compute(session=ia.Session())
        )
    np.testing.assert_allclose(chunked.values, whole.values, rtol=1e-10, atol=1e-12)


def test_generation_with_token_ids_appends_ids():
    lm = TinyGPT().double().eval()

    class Ids(nn.Module):
        def __init__(self):
            super().__init__()
            self.lm = lm

        def forward(self, ids):
            return self.lm(nn.functional.one_hot(ids, VOCAB).double())

    ids = torch.randint(0, VOCAB, (2, 4), generator=torch.Generator().manual_seed(2))
    tokens, inputs, vocabulary = greedy(Ids().eval(), ids, 3, "logits")
    expected, _ = _greedy(lm, nn.functional.one_hot(ids, VOCAB).double(), 3)
    assert torch.equal(tokens, expected) and vocabulary == VOCAB
    assert torch.equal(inputs, torch.cat([ids, tokens[:, :2]], 1))
    with pytest.raises(ValueError, match=r"append: inputs of shape \[2, 4\] \(torch.float64\)"):
        appended(ids.double(), tokens[:, 0], None)
    with pytest.raises(ValueError, match="append: token 10 has no one-hot row"):
        appended(torch.zeros(2, 4, 3), torch.tensor([10, 0]), None)
    assert torch.equal(appended(ids, tokens[:, 0], lambda x, t: x[:, :2]), ids[:, :2])


def test_bad_positions_and_generation(lm, prompts, assert_untouched):
    q = ia.model(lm).on(prompts)
    with pytest.raises(
        ValueError, match=r"position: 5 is outside the model's sequence of length 5"
    ):
        q.saliency(ia.at(5, 1))
    with pytest.raises(ValueError, match=r"position: -6 is outside the model's sequence"):
        ia.model(lm, position=-6).on(prompts).saliency(0)
    with pytest.raises(ValueError, match=r"target: class 11 is out of range for the model's 11"):
        q.saliency(ia.at(0, 11))
    with pytest.raises(
        ValueError, match=r"scores are a sequence \[3, 5, 11\] = \[N, L, V\]; choose"
    ):
        q.saliency("pred").compute()
    with pytest.raises(ValueError, match=r"every target names one: ia.at"):
        ia.compute(q.saliency(ia.at(-1, 1)), q.saliency(0))
    with pytest.raises(ValueError, match="reads position -1 of its scores already"):
        ia.model(lm, position=-1).on(prompts).saliency(ia.at(-1, 1))
    with pytest.raises(ValueError, match="target: 'generated' names the tokens"):
        q.saliency("generated")
    with pytest.raises(ValueError, match="generated: call it on the query of the prompts"):
        q.layer("wte").generated(2)
    with pytest.raises(ValueError, match="the model's scores at a position change when later"):
        ia.model(TinyGPT(causal=False).double().eval()).on(prompts).generated(2)
    with pytest.raises(ValueError, match="metrics of a map whose target names a position"):
        q.saliency(ia.at(-1, 1)).deletion(steps=4)
    assert_untouched(lm)


def test_the_language_cannot_say_positions(lm, prompts):
    q = ia.model(lm).on(prompts)
    with pytest.raises(ValueError, match=r"to_query: the target at\(4, 1\) has no form"):
        q.saliency(ia.at(-1, 1)).to_query()
    g = q.generated(2)
    with pytest.raises(ValueError, match=r"to_query: the target generated\(steps=2\) has no form"):
        g.saliency("generated").to_query()


class GPT2Embeds(nn.Module):
    """Hugging Face GPT-2 fed one-hot rows through its own token embedding matrix."""

    def __init__(self, gpt):
        super().__init__()
        self.gpt = gpt
        self.wte = OneHotEmbedding(gpt.transformer.wte.weight)

    def forward(self, onehot):
        return self.gpt(inputs_embeds=self.wte(onehot))


def test_gpt2_from_a_config(parity64):
    transformers = pytest.importorskip(
        "transformers", reason="transformers is not installed (a test extra, no download)"
    )
    config = transformers.GPT2Config(
        vocab_size=17, n_positions=16, n_embd=16, n_layer=2, n_head=2, attn_implementation="eager"
    )
    torch.manual_seed(0)
    gpt = transformers.GPT2LMHeadModel(config).double().eval()
    model = GPT2Embeds(gpt).eval()
    ids = torch.randint(0, 17, (2, 6), generator=torch.Generator().manual_seed(3))
    prompts = nn.functional.one_hot(ids, 17).double()
    q = ia.model(model, position=-1).on(prompts)  # CausalLMOutput: logits found by itself
    emb = q.layer("wte").integrated_gradients("pred", steps=16).compute()
    pred = model(prompts).logits[:, -1].argmax(1)
    theirs = ca.LayerIntegratedGradients(lambda x: model(x).logits[:, -1], model.wte).attribute(
        prompts.clone(), target=pred, n_steps=16
    )
    parity64(emb, theirs)
    g = q.generated(steps=3)
    steps = g.layer("wte").saliency("generated", abs=False).compute()
    assert steps.sizes["step"] == 3
    tokens = torch.from_numpy(steps["class"].values)
    inputs = g.node.inputs.value
    for s in range(3):
        read = lambda x, p=5 + s: model(x).logits[:, p]  # noqa: E731
        theirs = ca.LayerGradientXActivation(read, model.wte, multiply_by_inputs=False).attribute(
            inputs.clone(), target=tokens[:, s]
        )
        parity64(steps.sel(step=s), theirs)


def test_positions_on_inputs_read_lazily(lm, prompts):
    dask = pytest.importorskip("dask.array")
    lazy = dask.from_array(prompts.numpy(), chunks=2)
    ours = ia.model(lm, position=-1).on(lazy).saliency("pred").compute()
    plain = ia.model(lm, position=-1).on(prompts).saliency("pred").compute()
    np.testing.assert_allclose(ours.values, plain.values, rtol=1e-12)
    with pytest.raises(
        ValueError, match=r"these inputs are read lazily; give the model a position"
    ):
        ia.model(lm).on(lazy).saliency(ia.at(-1, 1))


def test_gpt2_generation_from_token_ids(parity64):
    transformers = pytest.importorskip(
        "transformers", reason="transformers is not installed (a test extra, no download)"
    )
    config = transformers.GPT2Config(
        vocab_size=17, n_positions=16, n_embd=16, n_layer=1, n_head=2, attn_implementation="eager"
    )
    torch.manual_seed(0)
    gpt = transformers.GPT2LMHeadModel(config).double().eval()
    ids = torch.randint(1, 17, (2, 5), generator=torch.Generator().manual_seed(4))
    g = ia.model(gpt, position=-1).on(ids).generated(steps=3)
    emb = (
        g.layer("transformer.wte")
        .integrated_gradients("generated", baseline=ia.tokens(0), steps=16)
        .compute()
    )
    assert emb.dims == ("sample", "step", "token", "embedding")
    tokens = torch.from_numpy(emb["class"].values)
    expected = gpt.generate(ids, max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert torch.equal(tokens, expected[:, 5:])
    inputs = expected[:, :-1]
    for s in range(3):
        read = lambda x, p=4 + s: gpt(x).logits[:, p]  # noqa: E731
        theirs = ca.LayerIntegratedGradients(read, gpt.transformer.wte).attribute(
            inputs, torch.zeros_like(inputs), target=tokens[:, s], n_steps=16
        )
        parity64(emb.sel(step=s), theirs)
