"""Every node type has its entry in every dispatch table of its role (as ibis checks every
operation against every backend), and a missing entry fails loudly."""

from __future__ import annotations

import dataclasses
import gc

import pytest

import algebra  # noqa: F401  (imports every table)
from algebra.ir.node import TABLES, Node, covers, dispatch_table, node_types

EXPECTED_TABLES = {
    "describe_expr",
    "describe_step",
    "evaluate",
    "evaluate_verb",
    "label",
    "partition",
    "rebased",
    "result_name",
    "unparse",
    "unparse_view",
}


def test_the_tables_are_all_loaded():
    assert set(TABLES) >= EXPECTED_TABLES


@pytest.mark.parametrize("concern", sorted(EXPECTED_TABLES))
def test_every_node_type_has_an_entry(concern):
    table, role = TABLES[concern]
    missing = [t.__name__ for t in node_types() if covers(role, t.role) and t not in table.registry]
    assert not missing, f"{concern} has no entry for {missing}"


def test_roles_are_known():
    assert {t.role for t in node_types()} == {"view", "computed", "verb"}


def test_a_new_node_type_without_entries_is_caught():
    @dataclasses.dataclass(frozen=True, eq=False)
    class Probe(Node):
        child: Node
        op = "probe"

    table, _ = TABLES["evaluate"]
    assert Probe in node_types() and Probe not in table.registry
    with pytest.raises(TypeError, match="evaluate: no entry for node type Probe"):
        table(object.__new__(Probe), {}, {})
    del Probe
    gc.collect()  # subclasses are held weakly: the probe leaves no trace for other tests
    assert "Probe" not in [t.__name__ for t in node_types()]


def test_dispatch_table_refuses_unknown_types():
    table = dispatch_table("probe table", role="all")
    TABLES.pop("probe table")
    with pytest.raises(TypeError, match="probe table: no entry for node type int"):
        table(3)
