"""Expression nodes are immutable, structurally hashed, and form a networkx graph."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import algebra as ia


def test_nodes_are_immutable(mlp, features):
    node = ia.model(mlp).on(features).saliency(0).node
    with pytest.raises(dataclasses.FrozenInstanceError):
        node.method = "input_x_gradient"  # type: ignore[misc]


def test_structural_equality_and_hash(mlp, features):
    m = ia.model(mlp)
    a = m.on(features).integrated_gradients(1, steps=4)
    b = m.on(features).integrated_gradients(1, steps=4)
    c = m.on(features).integrated_gradients(1, steps=5)
    assert a.node == b.node and hash(a.node) == hash(b.node)
    assert a.node != c.node
    assert len({a.node, b.node, c.node}) == 2


def test_different_data_or_model_differ(mlp, features):
    m = ia.model(mlp)
    assert m.on(features).saliency(0).node != m.on(features.clone()).saliency(0).node
    other = ia.model(torch.nn.Sequential(torch.nn.Linear(6, 4)))
    assert m.on(features).saliency(0).node != other.on(features).saliency(0).node


def test_graph_has_ops_and_edges(cnn, images):
    g = ia.model(cnn).on(images).layer("relu1").input_x_gradient("pred").graph()
    ops = [d["op"] for _, d in g.nodes(data=True)]
    assert ops == ["source", "layer", "attribution"]
    labels = [d["label"] for _, d in g.nodes(data=True)]
    assert labels[1] == "layer('relu1')"
    assert g.number_of_edges() == 2


def test_repr_is_readable(cnn, images):
    q = ia.model(cnn, name="cnn").on(images)
    assert repr(q) == "Query(cnn on inputs [4, 3, 8, 8])"
    assert (
        repr(q.layer("conv1").saliency(ia.topk(2)))
        == "Expr(saliency(target=topk(2), abs=True) at layer 'conv1')"
    )
