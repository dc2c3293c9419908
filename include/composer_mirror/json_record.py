"""Typed values that travel as JSON (between tasks, through XCom or the bucket): one way to convert.

Every record of the mirror is a frozen dataclass with this mixin, and its JSON follows these rules,
so that what a stage writes is spelled out by one class and every reader gets the same fields back:

- ``to_json`` writes each field under its name, in the order the class declares them: a record as
  its own JSON, a list or tuple as a list and a dict as a dict (their items converted the same way),
  any other value as it is (it must be a JSON value).
- ``from_json`` reads each field by its declared type: a field typed as a record ``R`` (or
  ``R | None``, ``list[R]``, ``dict[str, R]``) is read with ``R.from_json``; any other value is taken
  as it is. Keys the class does not know are ignored and missing ones take their defaults, so a value
  written by an older or newer release of a task still reads; a key missing for a field without a
  default is an error (``TypeError``).
- A field declared ``= field(default=None, metadata=OPTIONAL)`` is left out of the JSON while it is
  None, and None when its key is missing: None means absent. It is for keys a document does not
  always carry (a shard entry written by a withdrawal has no ``selectors``), so that reading and
  writing it again keeps its shape. Every other field is always written, None as ``null``.

A class overrides ``to_json``/``from_json`` only where its JSON is not its fields (a constant
``format`` key, values normalised on the way in), and says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from functools import partial
from types import MappingProxyType, UnionType
from typing import Any, Self, Union, get_args, get_origin, get_type_hints

_OPTIONAL = "composer_mirror.json_record.optional"
# The metadata of a field that is left out of the JSON while it is None (see the module docstring).
OPTIONAL: Mapping[str, bool] = MappingProxyType({_OPTIONAL: True})


@dataclass(frozen=True)
class _Field:
    name: str
    optional: bool
    read: Callable[[Any], Any] | None  # None: the JSON value is the field's value


_SPECS: dict[type, tuple[_Field, ...]] = {}


class JsonRecord:
    """A dataclass mixin: ``to_json`` is its fields as JSON values, ``from_json`` the way back."""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for spec in _spec(type(self)):
            value = getattr(self, spec.name)
            if value is not None or not spec.optional:
                data[spec.name] = _to_json(value)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        values: dict[str, Any] = {}
        for spec in _spec(cls):
            if spec.name in data:
                value = data[spec.name]
                values[spec.name] = value if spec.read is None or value is None else spec.read(value)
        return cls(**values)


def _spec(cls: type) -> tuple[_Field, ...]:
    """How each field of ``cls`` is written and read, worked out from its annotations once per class."""
    spec = _SPECS.get(cls)
    if spec is None:
        hints = get_type_hints(cls)
        declared = fields(cls)
        spec = tuple(_Field(f.name, bool(f.metadata.get(_OPTIONAL)), _reader(hints[f.name])) for f in declared)
        _SPECS[cls] = spec
    return spec


def _reader(annotation: Any) -> Callable[[Any], Any] | None:
    """How to read a JSON value of a field so annotated; None when the value is taken as it is."""
    if isinstance(annotation, type) and issubclass(annotation, JsonRecord):
        return annotation.from_json
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, UnionType):
        inner = [arg for arg in args if arg is not type(None)]
        return _reader(inner[0]) if len(inner) == 1 else None  # None itself is never read: see from_json
    item = _reader(args[-1]) if origin in (list, dict) and args else None
    if item is None:
        return None
    return partial(_read_list, item) if origin is list else partial(_read_dict, item)


def _read_list(item: Callable[[Any], Any], value: Any) -> list[Any]:
    return [item(each) for each in value]


def _read_dict(item: Callable[[Any], Any], value: Any) -> dict[str, Any]:
    return {key: item(each) for key, each in value.items()}


def _to_json(value: Any) -> Any:
    if isinstance(value, JsonRecord):
        return value.to_json()
    if isinstance(value, dict):
        return {key: _to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_to_json(item) for item in value]
    return value
