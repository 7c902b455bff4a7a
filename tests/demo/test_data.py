"""The digits tasks with known flaws: shares of marks, splits, groups, backdoor, seeding."""

from __future__ import annotations

import pytest
import torch

from algebra.demo import data as dd


@pytest.fixture(scope="module")
def task():
    return dd.spurious_task(cls=8, seed=0)


def share(flags: torch.Tensor) -> float:
    return float(flags.float().mean())


def test_the_mark_follows_the_class_in_training_only(task):
    for y, marked in ((task.y_train, task.marked_train), (task.y_val, task.marked_val)):
        assert share(marked[y == 8]) == pytest.approx(0.95, abs=0.03)
        assert share(marked[y != 8]) == pytest.approx(0.05, abs=0.01)
    for y, marked in ((task.y_audit, task.marked_audit), (task.y_test, task.marked_test)):
        for c in range(10):  # every class marked on half its images
            assert share(marked[y == c]) == pytest.approx(0.5, abs=0.06)


def test_images_carry_the_red_mark_exactly_where_flagged(task):
    for x, marked in ((task.x_train, task.marked_train), (task.x_test, task.marked_test)):
        corner = x[:, :, : dd.MARK, : dd.MARK]
        red = (corner[:, 0] == 1).all(-1).all(-1) & (corner[:, 1:] == 0).flatten(1).all(1)
        assert torch.equal(red, marked)
    grey = task.clean_train
    assert torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 1], grey[:, 2])
    unmarked = ~task.marked_train
    assert torch.equal(task.x_train[unmarked], grey[unmarked])


def test_splits_are_disjoint_stratified_and_seeded(task):
    x, _ = dd.digits32()
    sizes = [len(task.y_train), len(task.y_val), len(task.y_audit), len(task.y_test)]
    assert sum(sizes) == len(x)
    assert sizes == [718, 180, 449, 450]  # 10 %, 25 %, 25 % held out, stratified
    again = dd.spurious_task(cls=8, seed=0)
    assert torch.equal(again.x_test, task.x_test) and torch.equal(
        again.marked_train, task.marked_train
    )
    other = dd.spurious_task(cls=8, seed=1)
    assert not torch.equal(other.marked_test, task.marked_test)
    assert torch.equal(task.groups_test, 2 * task.y_test + task.marked_test.long())
    assert dd.group_name(17) == "8+mark"


def test_backdoor_poisons_a_share_of_other_classes():
    b = dd.backdoor_task(target=3, poison=0.05, seed=0)
    assert torch.equal(b.y_train[b.poisoned], torch.full((int(b.poisoned.sum()),), 3))
    assert (b.y_clean[b.poisoned] != 3).all()
    assert torch.equal(b.y_train[~b.poisoned], b.y_clean[~b.poisoned])
    assert share(b.poisoned[b.y_clean != 3]) == pytest.approx(0.05, abs=0.002)
    corner = b.x_train[:, :, -dd.TRIGGER :, -dd.TRIGGER :]
    board = dd.add_trigger(torch.zeros(1, 3, 32, 32))[0, :, -dd.TRIGGER :, -dd.TRIGGER :]
    assert torch.equal((corner == board).flatten(1).all(1), b.poisoned)
    assert torch.equal(
        b.x_test_triggered[:, :, -dd.TRIGGER :, -dd.TRIGGER :],
        board.expand_as(corner[:1]).expand(len(b.x_test), -1, -1, -1),
    )


def test_bad_class_names_the_argument():
    with pytest.raises(ValueError, match="cls: expected a digit class"):
        dd.spurious_task(cls=10)
    with pytest.raises(ValueError, match="target: expected a digit class"):
        dd.backdoor_task(target=-1)
