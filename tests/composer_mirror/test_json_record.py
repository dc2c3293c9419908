"""The one JSON convention of the mirror's records: fields by name, nested records, optional keys."""

from __future__ import annotations

import importlib
import json
import pkgutil
from dataclasses import dataclass, field

import pytest

import composer_mirror
from composer_mirror.handoff import HandOff
from composer_mirror.json_record import OPTIONAL, JsonRecord, _spec


@dataclass(frozen=True)
class Leaf(JsonRecord):
    name: str
    size: int = 0


@dataclass(frozen=True)
class Tree(JsonRecord):
    root: Leaf
    spare: Leaf | None = None
    leaves: list[Leaf] = field(default_factory=list)
    by_name: dict[str, Leaf] = field(default_factory=dict)
    note: str | None = field(default=None, metadata=OPTIONAL)
    tags: list[str] = field(default_factory=list)


def test_nested_records_are_written_as_their_json_and_read_back_as_records() -> None:
    tree = Tree(Leaf("a", 1), Leaf("b"), [Leaf("c", 3)], {"d": Leaf("d", 4)}, "n", ["x"])
    document = json.loads(json.dumps(tree.to_json()))
    assert document == {
        "root": {"name": "a", "size": 1},
        "spare": {"name": "b", "size": 0},
        "leaves": [{"name": "c", "size": 3}],
        "by_name": {"d": {"name": "d", "size": 4}},
        "note": "n",
        "tags": ["x"],
    }
    assert list(document) == ["root", "spare", "leaves", "by_name", "note", "tags"]  # the declared order
    assert Tree.from_json(document) == tree


def test_an_optional_field_is_absent_while_none_and_any_other_none_is_null() -> None:
    document = Tree(Leaf("a")).to_json()
    assert "note" not in document and document["spare"] is None
    assert Tree.from_json(document).note is None
    assert Tree.from_json({**document, "spare": None}).spare is None


def test_unknown_keys_are_ignored_missing_ones_default_and_a_missing_required_one_raises() -> None:
    assert Leaf.from_json({"name": "a", "from_a_later_release": 1}) == Leaf("a")
    with pytest.raises(TypeError):
        Leaf.from_json({"size": 1})


def test_the_json_is_a_copy_the_record_does_not_share() -> None:
    tree = Tree(Leaf("a"), tags=["x"])
    tree.to_json()["tags"].append("y")
    assert tree.tags == ["x"]


def test_a_hand_off_carries_an_inline_none_and_leaves_out_what_it_does_not_have() -> None:
    assert HandOff(value=None).to_json() == {"value": None}
    assert HandOff(0, "a .. b (2)", {"x": 1}).to_json() == {"index": 0, "label": "a .. b (2)", "value": {"x": 1}}
    assert HandOff(handoff="p.json", bytes=3).to_json() == {"handoff": "p.json", "bytes": 3}


def records() -> list[type[JsonRecord]]:
    for module in pkgutil.walk_packages(composer_mirror.__path__, prefix="composer_mirror."):
        if module.name not in {"composer_mirror.airflow_adapter", "composer_mirror.mirror_tasks"}:
            importlib.import_module(module.name)
    found, todo = [], list(JsonRecord.__subclasses__())
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return [cls for cls in found if cls.__module__.startswith("composer_mirror.")]


def test_every_record_of_the_library_is_a_frozen_dataclass_whose_annotations_resolve() -> None:
    library = records()
    assert len(library) >= 20
    for cls in library:
        assert cls.__dataclass_params__.frozen, cls  # type: ignore[attr-defined]
        assert _spec(cls), cls
