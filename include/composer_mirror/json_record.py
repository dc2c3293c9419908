"""Typed values that travel as JSON (between tasks, through XCom or the bucket): one way to convert."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import Any, Self


class JsonRecord:
    """A dataclass mixin: ``to_json`` is its fields as JSON values, ``from_json`` the way back.

    Keys the class does not know are ignored and missing ones take their defaults, so a value
    written by an older or newer release of a task still reads.
    """

    def to_json(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        known = {field.name for field in fields(cls)}  # type: ignore[arg-type]
        return cls(**{key: value for key, value in data.items() if key in known})
