"""Hugging Face models as users have them, built from configs (no download, random
weights): layer integrated gradients on the embeddings of a tiny BERT and a tiny GPT-2,
with attention masks and padding, equal Captum's LayerIntegratedGradients (float64, 1e-5).
The scores are selected from the models' outputs by a small wrapper here."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded: models from configs
transformers = pytest.importorskip("transformers")
ca = pytest.importorskip("captum.attr")

import algebra as ia  # noqa: E402

PAD = 0


class Logits(nn.Module):
    """The classification logits of a Hugging Face model (its forward returns a ModelOutput)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).logits


def tiny_bert() -> nn.Module:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=40,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=3,
        pad_token_id=PAD,
    )
    return Logits(transformers.BertForSequenceClassification(config)).double().eval()


def tiny_gpt2() -> nn.Module:
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=40,
        n_embd=16,
        n_layer=2,
        n_head=2,
        n_positions=16,
        num_labels=3,
        pad_token_id=PAD,
        bos_token_id=1,
        eos_token_id=2,
    )
    return Logits(transformers.GPT2ForSequenceClassification(config)).double().eval()


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 40, (3, 7), generator=g)
    mask = torch.ones_like(ids)
    ids[1, 5:], mask[1, 5:] = PAD, 0  # right padding
    ids[2, 3:], mask[2, 3:] = PAD, 0
    return ids, mask


def captum_lig(net, layer, ids, mask, baseline, target, extra=()):
    return ca.LayerIntegratedGradients(net, layer).attribute(
        ids,
        baselines=baseline,
        target=target,
        n_steps=20,
        additional_forward_args=(mask, *extra),
        return_convergence_delta=True,
    )


def test_bert_embeddings(batch, parity64, assert_untouched):
    ids, mask = batch
    net = tiny_bert()
    kinds = torch.zeros_like(ids)
    kinds[:, 4:] = 1  # a second segment
    q = ia.model(net).on(ids, forward_kwargs={"attention_mask": mask, "token_type_ids": kinds})
    reference = torch.full_like(ids, PAD)
    reference[:, 0] = ids[:, 0]  # keep the first token, as [CLS]
    for target in (0, 2):
        ours = q.layer("model.bert.embeddings").integrated_gradients(
            target, steps=20, baseline=ia.tokens(reference)
        )
        result = ours.compute()
        assert result.dims == ("sample", "token", "embedding")
        theirs, delta = captum_lig(
            net, net.model.bert.embeddings, ids, mask, reference, target, (kinds,)
        )
        parity64(result, theirs)
        torch.testing.assert_close(
            torch.from_numpy(result.delta.values), delta, atol=1e-8, rtol=1e-4
        )
    assert_untouched(net)


def test_bert_word_embeddings_with_every_class_at_once(batch, parity64):
    ids, mask = batch
    net = tiny_bert()
    q = ia.model(net).on({"input_ids": ids, "attention_mask": mask})
    result = q.layer("model.bert.embeddings.word_embeddings").integrated_gradients(
        "all", steps=20, baseline=ia.tokens(PAD)
    )
    r = result.compute()
    assert r.dims == ("sample", "target", "token", "embedding")
    for c in range(3):
        theirs, _ = captum_lig(net, net.model.bert.embeddings.word_embeddings, ids, mask, PAD, c)
        parity64(r.isel(target=c), theirs)


def test_gpt2_token_embeddings(batch, parity64, assert_untouched):
    # Left padding: the last token scores the sequence, and attends to the pads unless the
    # attention mask, each sample's own, hides them.
    ids, mask = batch[0].flip(1), batch[1].flip(1)
    net = tiny_gpt2()
    text = [[f"t{j}" for j in range(7)] for _ in range(3)]
    q = ia.model(net).on(
        {"input_ids": ids, "attention_mask": mask}, attribute="input_ids", tokens=text
    )
    result = q.layer("model.transformer.wte").integrated_gradients(
        1, steps=20, baseline=ia.tokens(PAD)
    )
    r = result.compute()
    theirs, delta = captum_lig(net, net.model.transformer.wte, ids, mask, PAD, 1)
    parity64(r, theirs)
    torch.testing.assert_close(torch.from_numpy(r.delta.values), delta, atol=1e-8, rtol=1e-4)
    assert r.token_text.values.tolist() == text
    assert r.sum("embedding").dims == ("sample", "token")
    assert_untouched(net)


def test_saliency_of_token_ids_names_the_embeddings(batch):
    ids, mask = batch
    q = ia.model(tiny_bert()).on(ids, forward_kwargs={"attention_mask": mask})
    with pytest.raises(ValueError, match=r"q.layer\('model.bert.embeddings.word_embeddings'\)"):
        q.saliency(0)
