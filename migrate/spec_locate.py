"""Find the line of a key in a TOML document, for error messages about migration.toml.

tomllib returns plain values without positions, so a validation error knows the field
(`environments.lab.timings.bake_seconds`) but not the line. This module scans the raw text once and
maps every key path it sees — tables, array-of-tables elements, dotted keys, inline tables and array
items — to the line it starts on. It only runs on text tomllib already accepted, and it is best
effort: anything it cannot follow is simply left out, and callers fall back to a shorter path."""

from __future__ import annotations

import bisect
import re
import tomllib

Loc = tuple[str | int, ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR_END = re.compile(r"[,\]}\n#]")


def key_lines(text: str) -> dict[Loc, int]:
    """Every key path found in `text` → its 1-based line; {} for text this scanner cannot follow."""
    scanner = _Scanner(text)
    try:
        scanner.document()
    except (IndexError, ValueError, tomllib.TOMLDecodeError):
        pass  # keep what was mapped before the part we could not follow
    return scanner.lines


def line_of(lines: dict[Loc, int], loc: Loc) -> int | None:
    """The line of `loc`, or of its longest prefix that has one (a missing key → its table's line)."""
    for end in range(len(loc), 0, -1):
        line = lines.get(tuple(loc[:end]))
        if line is not None:
            return line
    return None


class _Scanner:
    """A position-only reader of valid TOML: records where each key path starts, decodes nothing else."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.lines: dict[Loc, int] = {}
        self._aot_count: dict[Loc, int] = {}  # array-of-tables path → elements seen so far
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    # -- helpers -------------------------------------------------------------------------------
    def _line(self, pos: int | None = None) -> int:
        return bisect.bisect_right(self._line_starts, self.i if pos is None else pos)

    def _record(self, loc: Loc, pos: int | None = None) -> None:
        self.lines.setdefault(loc, self._line(pos))

    def _peek(self, n: int = 1) -> str:
        return self.s[self.i:self.i + n]

    def _skip(self, newlines: bool = True) -> None:
        """Skip blanks and comments (and newlines when allowed)."""
        while self.i < len(self.s):
            ch = self.s[self.i]
            if ch in " \t\r" or (newlines and ch == "\n"):
                self.i += 1
            elif ch == "#":
                end = self.s.find("\n", self.i)
                self.i = len(self.s) if end < 0 else end
            else:
                return

    def _expect(self, token: str) -> None:
        if not self.s.startswith(token, self.i):
            raise ValueError(f"expected {token!r} at offset {self.i}")
        self.i += len(token)

    # -- grammar -------------------------------------------------------------------------------
    def document(self) -> None:
        table: Loc = ()
        while True:
            self._skip()
            if self.i >= len(self.s):
                return
            start = self.i
            if self._peek(2) == "[[":
                self.i += 2
                keys = self._key()
                self._skip(newlines=False)
                self._expect("]]")
                array = self._resolve(keys[:-1]) + (keys[-1],)
                index = self._aot_count.get(array, 0)
                self._aot_count[array] = index + 1
                table = array + (index,)
                self._record_prefixes(array, start)
                self._record(table, start)
            elif self._peek() == "[":
                self.i += 1
                keys = self._key()
                self._skip(newlines=False)
                self._expect("]")
                table = self._resolve(keys)
                self._record_prefixes(table, start)
            else:
                keys = self._key()
                self._skip(newlines=False)
                self._expect("=")
                self._skip(newlines=False)
                self._record_prefixes(table + keys, start)
                self._value(table + keys)

    def _resolve(self, keys: Loc) -> Loc:
        """A header's key path with the current index inserted after each array of tables."""
        path: Loc = ()
        for key in keys:
            path += (key,)
            if path in self._aot_count:
                path += (self._aot_count[path] - 1,)
        return path

    def _record_prefixes(self, loc: Loc, pos: int) -> None:
        for end in range(1, len(loc) + 1):
            self._record(loc[:end], pos)

    def _key(self) -> Loc:
        parts: list[str] = []
        while True:
            self._skip(newlines=False)
            ch = self._peek()
            if ch in ('"', "'"):
                start = self.i
                self._string()
                parts.append(tomllib.loads("k = " + self.s[start:self.i])["k"])
            else:
                match = _BARE_KEY.match(self.s, self.i)
                if not match:
                    raise ValueError(f"no key at offset {self.i}")
                parts.append(match.group())
                self.i = match.end()
            self._skip(newlines=False)
            if self._peek() != ".":
                return tuple(parts)
            self.i += 1

    def _string(self) -> None:
        """Move past one string of any of TOML's four kinds."""
        for fence, escapes in (('"""', True), ("'''", False), ('"', True), ("'", False)):
            if self.s.startswith(fence, self.i):
                break
        self.i += len(fence)
        while self.i < len(self.s):
            if escapes and self.s[self.i] == "\\":
                self.i += 2
                continue
            if self.s.startswith(fence, self.i):
                self.i += len(fence)
                while len(fence) == 3 and self._peek() == fence[0]:  # up to two quotes end the body
                    self.i += 1
                return
            self.i += 1
        raise ValueError("unterminated string")

    def _value(self, loc: Loc) -> None:
        ch = self._peek()
        if ch in ('"', "'"):
            self._string()
        elif ch == "[":
            self.i += 1
            index = 0
            while True:
                self._skip()
                if self._peek() == "]":
                    self.i += 1
                    return
                self._record(loc + (index,))
                self._value(loc + (index,))
                index += 1
                self._skip()
                if self._peek() == ",":
                    self.i += 1
        elif ch == "{":
            self.i += 1
            while True:
                self._skip()
                if self._peek() == "}":
                    self.i += 1
                    return
                keys = self._key()
                self._skip()
                self._expect("=")
                self._skip()
                for end in range(1, len(keys) + 1):
                    self._record(loc + keys[:end])
                self._value(loc + keys)
                self._skip()
                if self._peek() == ",":
                    self.i += 1
        else:
            match = _SCALAR_END.search(self.s, self.i)
            end = len(self.s) if match is None else match.start()
            if end == self.i:
                raise ValueError(f"no value at offset {self.i}")
            self.i = end
