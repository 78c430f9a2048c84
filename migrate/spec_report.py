"""Turn whatever is wrong with migration.toml into exactly one SpecError line.

Three sources of problems, reported the same way — file, line and field, one-line message, a hint
that says the fix — and only the first (by line) is shown, with a count of the rest:
TOML syntax (tomllib), shape and types (pydantic), and cross-field rules (spec.py's own checks)."""

from __future__ import annotations

import difflib
import json
import re
import tomllib
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from migrate.errors import SpecError
from migrate.spec_locate import Loc, line_of

_BARE = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the spec: where (key path, line when known), what (one line), the fix."""

    loc: Loc
    message: str
    hint: str
    line: int | None = None
    column: int | None = None


def dotted(loc: Loc) -> str:
    """A key path as an operator would type it: `quarters[1].phases[0].region`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            key = part if _BARE.fullmatch(part) else json.dumps(part)
            out += ("." if out else "") + key
    return out


def suggest(value: str, known: list[str] | tuple[str, ...], noun: str) -> str:
    """'did you mean …? known …: a, b, c' — the usual hint for a name that does not exist."""
    known_text = f"known {noun}: {', '.join(known)}"
    close = difflib.get_close_matches(str(value), list(known), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'? {known_text}" if close else known_text


def raise_first(problems: list[Problem], path: Path) -> NoReturn:
    """Raise a SpecError for the topmost problem; the message counts the others."""
    ordered = sorted(enumerate(problems),
                     key=lambda item: (item[1].line is None, item[1].line or 0, item[0]))
    first = ordered[0][1]
    more = len(problems) - 1
    field = dotted(first.loc)
    where = str(path)
    if first.line is not None:
        where += f":{first.line}"
        if field:
            where += f": {field}"
    elif field:
        where += f": {field}"
    message = _one_line(first.message)
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    raise SpecError(message, hint=_one_line(first.hint), where=where,
                    details={"file": str(path), "line": first.line, "column": first.column,
                             "field": field or None, "more": more})


_URL_PASSWORD = re.compile(r"(\w://[^:/@\s\"']*:)[^@\s\"']+@")


def redact(text: str) -> str:
    """Mask a password inside a URL, so a misplaced secret is not echoed to a terminal or log."""
    return _URL_PASSWORD.sub(r"\1***@", text)


def _one_line(text: str) -> str:
    return " ".join(text.splitlines()).strip()


# -- TOML syntax -------------------------------------------------------------------------------

_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_AT_END = re.compile(r"\s*\(at end of document\)\s*$")

_SYNTAX_FIXES = (
    ("Expected '=' after a key", "write `key = value`; keys with spaces or dots need quotes"),
    ("Invalid value", 'quote strings (region = "ap-northeast-1"); numbers, true and false are bare'),
    ("Cannot declare", "each [table] and key may appear once; merge the duplicates"),
    ("Cannot overwrite", "each [table] and key may appear once; merge the duplicates"),
    ("Unterminated string", "close the string with the quote it opened with"),
    ("Unclosed array", "close the array with ]"),
    ("Unclosed inline table", "close the inline table with } on the same line"),
    ("Expected newline or end of document", "put one `key = value` per line; comments start with #"),
    ("Invalid statement", "each line is `key = value`, a [table] header, or a # comment"),
    ("Illegal character", "remove the control character or put it in a quoted string"),
)


def syntax_problem(exc: tomllib.TOMLDecodeError, text: str) -> Problem:
    """A tomllib error as a Problem on its line, with the text of that line in the hint."""
    raw = str(exc)
    line = column = None
    match = _AT.search(raw)
    if match:
        line, column = int(match.group(1)), int(match.group(2))
        raw = raw[:match.start()]
    elif _AT_END.search(raw):
        raw = raw[:_AT_END.search(raw).start()]
        line = text.count("\n") + (0 if text.endswith("\n") else 1) or 1
    else:  # newer Pythons also expose the position as attributes
        line, column = getattr(exc, "lineno", None), getattr(exc, "colno", None)
    fix = next((f for key, f in _SYNTAX_FIXES if raw.startswith(key)),
               "fix the TOML syntax (see https://toml.io/en/v1.0.0)")
    source = text.splitlines()[line - 1].strip() if line and line <= len(text.splitlines()) else ""
    source = redact(source)
    if len(source) > 60:
        source = source[:57] + "..."
    hint = f"line {line} reads `{source}`: {fix}" if source else fix
    message = f"invalid TOML: {raw}" + (f" (column {column})" if column else "")
    return Problem((), message, hint, line, column)


# -- pydantic ----------------------------------------------------------------------------------

_EXPECTED = {
    "float_type": "a number", "float_parsing": "a number", "int_type": "a whole number",
    "int_parsing": "a whole number", "int_from_float": "a whole number", "string_type": "a string",
    "bool_type": "true or false", "bool_parsing": "true or false", "list_type": "an array",
    "dict_type": "a table", "model_type": "a table", "model_attributes_type": "a table",
}
_BOUNDS = {"greater_than": (">", "gt"), "greater_than_equal": (">=", "ge"),
           "less_than": ("<", "lt"), "less_than_equal": ("<=", "le")}


def pydantic_problems(exc: ValidationError, root: type[BaseModel],
                      lines: dict[Loc, int]) -> list[Problem]:
    """Every pydantic error as a Problem with our wording, the field's line and a fix."""
    errors = exc.errors()
    # A misspelt key shows up twice: as an unknown key and as the real one missing. Report it once,
    # as the unknown key (on its own line, with "did you mean" the missing one).
    extras = {(tuple(e["loc"][:-1]), e["loc"][-1]) for e in errors if e["type"] == "extra_forbidden"}
    problems = []
    for err in errors:
        loc: Loc = tuple(err["loc"])
        if err["type"] == "missing" and any(
                parent == loc[:-1] and difflib.get_close_matches(str(loc[-1]), [str(key)], cutoff=0.6)
                for parent, key in extras):
            continue
        if loc and loc[-1] == "[key]":
            loc = loc[:-1]
        message, hint = _explain(err, loc, root)
        problems.append(Problem(loc, message, hint, line_of(lines, loc)))
    return problems


def _explain(err: dict[str, Any], loc: Loc, root: type[BaseModel]) -> tuple[str, str]:
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    name = next((p for p in reversed(loc) if isinstance(p, str)), "value")
    info, parent = field_at(root, loc)
    described = f"{name} must be {info.description}" if info is not None and info.description else ""
    if kind.startswith("spec_"):  # our own validators word their message and hint themselves
        return err["msg"], ctx.get("hint") or described
    if kind == "missing":
        where = dotted(loc[:-1]) or "the top level"
        return (f"missing required key '{name}'",
                f"add {name} to {where}" + (f": {described}" if described else ""))
    if kind == "extra_forbidden":
        known = list(parent.model_fields) if parent is not None else []
        where = dotted(loc[:-1]) or "the top level"
        return (f"unknown key '{name}'",
                suggest(name, known, f"keys in {where}") if known else f"remove '{name}'")
    if kind in _BOUNDS:
        op, key = _BOUNDS[kind]
        return (f"must be {op} {ctx.get(key):g}, got {show(value)}",
                described or f"{name} must be {op} {ctx.get(key):g}")
    if kind in _EXPECTED:
        return (f"must be {_EXPECTED[kind]}, got {toml_type(value)} {show(value)}".rstrip(),
                described or f"{name} must be {_EXPECTED[kind]}")
    if kind == "string_pattern_mismatch":
        return f"invalid value {show(value)}", described or f"{name} must match {ctx.get('pattern')}"
    if kind == "string_too_short":
        return "must not be empty", described or f"give {name} a value"
    if kind == "literal_error":
        return (f"must be {ctx.get('expected')}, got {show(value)}",
                described or f"{name} must be {ctx.get('expected')}")
    return f"{err['msg'][:1].lower()}{err['msg'][1:]}, got {show(value)}", described or "see the comments in migration.toml"


def field_at(root: type[BaseModel], loc: Loc) -> tuple[Any, type[BaseModel] | None]:
    """The FieldInfo that `loc` ends in (or lies inside), and the model holding its last key."""
    tp: Any = root
    info = None
    parent: type[BaseModel] | None = None
    for part in loc:
        tp = _strip(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            parent = tp
            if not isinstance(part, str) or part not in tp.model_fields:
                return None, parent
            info = tp.model_fields[part]
            tp = info.annotation
        elif get_origin(tp) in (list, tuple) and get_args(tp):
            tp = get_args(tp)[0]
        elif get_origin(tp) is dict and get_args(tp):
            tp = get_args(tp)[1]
        else:
            break
    return info, parent


def _strip(tp: Any) -> Any:
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        elif get_origin(tp) in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def toml_type(value: Any) -> str:
    """The TOML name of a parsed value's type, for 'got a string "5"'."""
    names = ((bool, "boolean"), (int, "integer"), (float, "float"), (str, "string"),
             (dict, "table"), (list, "array"))
    return next((n for t, n in names if isinstance(value, t)), "date/time")


def show(value: Any) -> str:
    """A short TOML-looking rendering of a value (tables and arrays abbreviated)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, dict):
        return ""
    elif isinstance(value, float):
        text = f"{value:g}"
    else:
        text = str(value)
    text = redact(text)
    return text if len(text) <= 60 else text[:57] + "..."
