"""The three-way diff: answers flattened to field paths; noise is what the primary's own two samples
disagree on (pure: no I/O, no clock)."""

from __future__ import annotations

import fnmatch
import hashlib
import json
from dataclasses import dataclass
from typing import Any

STATUS_FIELD = "$status"
BODY_FIELD = "$body"  # a body that is not JSON: compared as a digest

# --- the three-way diff ------------------------------------------------------------------------

FieldPath = tuple[str | int, ...]


class _Empty:
    """An empty object or array, as a leaf (so `{}` vs `[]` vs absent differ)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Empty) and other.kind == self.kind

    def __hash__(self) -> int:
        return hash(self.kind)

    def __repr__(self) -> str:
        return self.kind


ABSENT = _Empty("<absent>")
_EMPTY_OBJECT, _EMPTY_ARRAY = _Empty("{}"), _Empty("[]")


def flatten(value: Any, prefix: FieldPath = (), out: dict[FieldPath, Any] | None = None) -> dict[FieldPath, Any]:
    """Leaf path → value of a JSON document (list items by index)."""
    out = {} if out is None else out
    if isinstance(value, dict):
        if not value:
            out[prefix] = _EMPTY_OBJECT
        for key, item in value.items():
            flatten(item, prefix + (str(key),), out)
    elif isinstance(value, list):
        if not value:
            out[prefix] = _EMPTY_ARRAY
        for index, item in enumerate(value):
            flatten(item, prefix + (index,), out)
    else:
        out[prefix] = value
    return out


def answer_fields(status: int, body: bytes, content_type: str = "application/json") -> dict[FieldPath, Any]:
    """An HTTP answer as comparable fields: `$status` plus the JSON body's leaves (or a digest)."""
    fields: dict[FieldPath, Any] = {(STATUS_FIELD,): status}
    if not body:
        return fields
    if "json" in content_type:
        try:
            return flatten(json.loads(body), (), fields)
        except ValueError:
            pass
    fields[(BODY_FIELD,)] = hashlib.sha256(body).hexdigest()
    return fields


def same(a: Any, b: Any) -> bool:
    """Equal with the same JSON type (1, 1.0 and true are three different answers)."""
    return type(a) is type(b) and a == b


def path_text(path: FieldPath) -> str:
    return ".".join(str(p) for p in path)


def path_shape(path: FieldPath) -> str:
    """The path with list indices as `*`: what a field is, across list positions."""
    return ".".join("*" if isinstance(p, int) else p for p in path)


def ignored(path: FieldPath, patterns: tuple[tuple[str, ...], ...]) -> bool:
    """True when some pattern matches a run of the path's keys (and so everything below them);
    `*` in a pattern matches any one key or list index."""
    keys = [str(p) for p in path]
    for pattern in patterns:
        n = len(pattern)
        for start in range(len(keys) - n + 1):
            if all(fnmatch.fnmatchcase(keys[start + j], pattern[j]) for j in range(n)):
                return True
    return False


@dataclass(frozen=True)
class Diff:
    """One three-way comparison."""

    mismatched: tuple[FieldPath, ...]  # primaries agree, the candidate differs
    noisy: tuple[FieldPath, ...]  # the two primary samples differ: cancelled


def three_way(primary: dict[FieldPath, Any], second: dict[FieldPath, Any], candidate: dict[FieldPath, Any],
              ignore: tuple[tuple[str, ...], ...] = ()) -> Diff:
    """Compare flattened answers: noise is what the primary's own two samples disagree on."""
    mismatched, noisy = [], []
    for path in sorted({*primary, *second, *candidate}, key=lambda p: tuple(map(str, p))):
        if ignore and ignored(path, ignore):
            continue
        p1, p2, c = primary.get(path, ABSENT), second.get(path, ABSENT), candidate.get(path, ABSENT)
        if not same(p1, p2):
            noisy.append(path)
        elif not same(c, p1):
            mismatched.append(path)
    return Diff(tuple(mismatched), tuple(noisy))
