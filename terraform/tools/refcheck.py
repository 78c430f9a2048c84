"""Static reference checker for the Terraform code under terraform/.

`terraform validate` would catch a dangling reference, but it needs the providers downloaded, which
CI machines cannot do. This checker needs only python-hcl2: it parses every `.tf` file of a module
(a folder), collects what the module declares and verifies every reference against it:

- ``var.NAME``                      a ``variable "NAME"`` block
- ``local.NAME``                    an attribute of a ``locals`` block
- ``module.NAME`` (``.OUTPUT``)     a ``module "NAME"`` block (and, for a local source, its output)
- ``data.TYPE.NAME``                a ``data "TYPE" "NAME"`` block
- ``TYPE.NAME``                     a ``resource "TYPE" "NAME"`` block (TYPE like provider_kind)
- ``provider = NAME.ALIAS``         a provider configuration (or ``configuration_aliases`` entry)

It also checks that every variable has a ``type`` and a non-empty ``description`` and is used,
every output has a ``description``, module calls with a local source pass only declared variables
and every required one, and nothing is declared twice.

Usage: ``python terraform/tools/refcheck.py [DIR ...]`` (default: the terraform/ folder holding
this file). Prints one finding per line (``path:line: code: message``) and exits 1 if any.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import hcl2
from lark import Token, Tree
from lark.exceptions import LarkError

# Roots that are Terraform's own objects or iteration symbols, never declarations of the module.
_BUILTIN_ROOTS = frozenset({"each", "count", "self", "path", "terraform"})
# Meta-arguments of a module block that are not inputs of the called module.
_MODULE_META_ARGUMENTS = frozenset({"source", "version", "providers", "count", "for_each", "depends_on"})
# Blocks whose addresses name things that may no longer (or not yet) exist in the configuration.
_ADDRESS_ONLY_BLOCKS = frozenset({"moved", "removed", "import"})
_TRAVERSALS = frozenset({"get_attr_expr_term", "index_expr_term", "attr_splat_expr_term", "full_splat_expr_term"})
_RESOURCE_TYPE = re.compile(r"^[a-z][a-z0-9]*_[a-z0-9_]+$")
_INDEX = "[]"  # a step that is an index or a splat, not an attribute name


@dataclass(frozen=True, order=True)
class Finding:
    """One problem: where it is (path relative to the checked folder, 1-based line) and what."""

    path: str
    line: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.code}: {self.message}"


@dataclass(frozen=True)
class Reference:
    """A traversal found in an expression: its root symbol, the steps after it, where it is."""

    root: str
    steps: tuple[str, ...]
    file: Path
    line: int

    @property
    def text(self) -> str:
        """The reference as written, up to its first index (e.g. ``aws_subnet.private``)."""
        parts = [self.root]
        for step in self.steps:
            if step == _INDEX:
                break
            parts.append(step)
        return ".".join(parts)


@dataclass(frozen=True)
class Declaration:
    """Where a named thing is declared, and (for variables, outputs and modules) its attributes."""

    file: Path
    line: int
    attributes: frozenset[str] = frozenset()
    source: str | None = None  # module calls only: the literal source string


@dataclass
class Module:
    """Everything one folder of `.tf` files declares and references."""

    path: Path
    files: list[Path] = field(default_factory=list)
    variables: dict[str, Declaration] = field(default_factory=dict)
    locals: dict[str, Declaration] = field(default_factory=dict)
    resources: dict[tuple[str, str], Declaration] = field(default_factory=dict)
    data: dict[tuple[str, str], Declaration] = field(default_factory=dict)
    modules: dict[str, Declaration] = field(default_factory=dict)
    outputs: dict[str, Declaration] = field(default_factory=dict)
    provider_configs: set[str] = field(default_factory=set)  # "aws", "aws.source"
    references: list[Reference] = field(default_factory=list)
    iteration_symbols: set[str] = field(default_factory=set)  # for-expression and dynamic iterators
    provider_references: list[Reference] = field(default_factory=list)
    module_providers: list[tuple[str, Reference, Reference]] = field(default_factory=list)
    module_arguments: list[tuple[str, str, Path, int]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


# -------------------------------------------------------------------------------------------------
# Parse-tree helpers (the raw Lark tree of python-hcl2, which keeps line numbers)
# -------------------------------------------------------------------------------------------------


def _token_text(node: Tree | Token) -> str:
    """Text of an identifier, keyword, literal or plain string node (quotes removed)."""
    if isinstance(node, Token):
        return str(node)
    if node.data == "string":
        return "".join(_token_text(part) for part in node.children if isinstance(part, Tree))
    return "".join(_token_text(child) for child in node.children)


def _line(node: Tree | Token) -> int:
    return node.line if isinstance(node, Token) else node.meta.line


def _body_items(body: Tree):
    """Attributes and blocks of a body, in order."""
    for child in body.children:
        if isinstance(child, Tree) and child.data in ("attribute", "block"):
            yield child


def _attribute(node: Tree) -> tuple[str, Tree]:
    """(name, expression) of an attribute node."""
    return _token_text(node.children[0]), node.children[-1]


def _block(node: Tree) -> tuple[str, list[str], Tree]:
    """(type, labels, body) of a block node."""
    trees = [c for c in node.children if isinstance(c, Tree)]
    body = next(c for c in trees if c.data == "body")
    words = [c for c in trees if c.data in ("identifier", "string", "keyword", "literal_value")]
    return _token_text(words[0]), [_token_text(w) for w in words[1:]], body


def _flatten(node: Tree) -> tuple[Token | None, list[str], list[Tree | Token]]:
    """A traversal as (root identifier token or None, steps, sub-expressions still to scan)."""
    if node.data == "expr_term":
        if len(node.children) == 1 and isinstance(node.children[0], Tree):
            child = node.children[0]
            if child.data == "identifier":
                return child.children[0], [], []
            if child.data in _TRAVERSALS:
                return _flatten(child)
        return None, [], list(node.children)
    base, operation = node.children[0], node.children[1]
    root, steps, rest = _flatten(base)
    if node.data == "get_attr_expr_term":
        name = next(c for c in operation.children if isinstance(c, Tree))
        return root, steps + [_token_text(name)], rest
    return root, steps + [_INDEX], rest + [operation]


def _scan(node: Tree | Token, file: Path, out: list[Reference], line_offset: int = 0) -> None:
    """Append every traversal with a root identifier found in an expression tree to `out`."""
    if isinstance(node, Token):
        if node.type in ("HEREDOC_TEMPLATE", "HEREDOC_TEMPLATE_TRIM"):
            _scan_template(str(node), node.line + line_offset, file, out)
        return
    if node.data == "expr_term" or node.data in _TRAVERSALS:
        root, steps, rest = _flatten(node)
        if root is not None:
            out.append(Reference(str(root), tuple(steps), file, root.line + line_offset))
        for sub in rest:
            _scan(sub, file, out, line_offset)
        return
    for child in node.children:
        _scan(child, file, out, line_offset)


def _scan_template(text: str, first_line: int, file: Path, out: list[Reference]) -> None:
    """Scan the ``${...}`` and ``%{...}`` sequences of a heredoc (kept as one token by the parser)."""
    i = 0
    while True:
        starts = [p for p in (text.find("${", i), text.find("%{", i)) if p >= 0]
        if not starts:
            return
        start = min(starts)
        if start > 0 and text[start - 1] == text[start]:  # $${ and %%{ are escapes
            i = start + 2
            continue
        depth, j, quote = 1, start + 2, False
        while j < len(text) and depth:
            ch = text[j]
            if quote:
                if ch == "\\":
                    j += 1
                elif ch == '"':
                    quote = False
            elif ch == '"':
                quote = True
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            j += 1
        inner = text[start + 2 : j - 1].strip().strip("~").strip()
        if text[start] == "%":  # directive: "if COND", "for X in EXPR", "else", "endif", ...
            inner = re.sub(r"^(if|for\s+[\w,\s]+\s+in|else|endif|endfor)\b", "", inner).strip()
        if inner:
            try:
                tree = hcl2.parses_to_tree(f"x = {inner}\n")
            except LarkError:
                tree = None
            if tree is not None:
                _scan(tree, file, out, first_line + text.count("\n", 0, start) - 1)
        i = j


# -------------------------------------------------------------------------------------------------
# Loading a module
# -------------------------------------------------------------------------------------------------


def _declare(module: Module, table: dict, key, decl: Declaration, what: str, base: Path) -> None:
    if key in table:
        first = table[key]
        name = ".".join(key) if isinstance(key, tuple) else key
        module.findings.append(Finding(
            _rel(decl.file, base), decl.line, "duplicate-declaration",
            f"{what} {name} is already declared at {_rel(first.file, base)}:{first.line}"))
        return
    table[key] = decl


def _rel(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def load_module(path: Path, base: Path | None = None) -> Module:
    """Parse every `.tf` file of the folder `path`; findings name files relative to `base`."""
    base = base or path
    module = Module(path=path)
    for file in sorted(path.glob("*.tf")):
        module.files.append(file)
        try:
            tree = hcl2.parses_to_tree(file.read_text(encoding="utf-8"))
        except LarkError as exc:
            line = getattr(exc, "line", 0) or 0
            module.findings.append(Finding(_rel(file, base), int(line), "parse-error", str(exc).splitlines()[0]))
            continue
        body = next(c for c in tree.children if isinstance(c, Tree) and c.data == "body")
        for item in _body_items(body):
            if item.data == "attribute":
                module.findings.append(Finding(_rel(file, base), _line(item), "unexpected-attribute",
                                               f"top-level attribute {_attribute(item)[0]} outside any block"))
                continue
            _load_block(module, file, item, base)
    return module


def _attributes(body: Tree) -> dict[str, Tree]:
    return {_attribute(item)[0]: item for item in _body_items(body) if item.data == "attribute"}


def _load_block(module: Module, file: Path, node: Tree, base: Path) -> None:
    kind, labels, body = _block(node)
    line = _line(node)
    attrs = _attributes(body)
    if kind == "variable" and labels:
        _declare(module, module.variables, labels[0], Declaration(file, line, frozenset(attrs)), "variable", base)
        for name in ("type", "description"):
            if name not in attrs:
                module.findings.append(Finding(_rel(file, base), line, f"variable-without-{name}",
                                               f"variable {labels[0]} has no {name}"))
        if "description" in attrs and not _token_text(_attribute(attrs["description"])[1]).strip():
            module.findings.append(Finding(_rel(file, base), line, "variable-without-description",
                                           f"variable {labels[0]} has an empty description"))
    elif kind == "output" and labels:
        _declare(module, module.outputs, labels[0], Declaration(file, line, frozenset(attrs)), "output", base)
        if "description" not in attrs:
            module.findings.append(Finding(_rel(file, base), line, "output-without-description",
                                           f"output {labels[0]} has no description"))
    elif kind == "locals":
        for name, attr in attrs.items():
            _declare(module, module.locals, name, Declaration(file, _line(attr)), "local", base)
    elif kind == "resource" and len(labels) == 2:
        _declare(module, module.resources, (labels[0], labels[1]), Declaration(file, line), "resource", base)
    elif kind == "data" and len(labels) == 2:
        _declare(module, module.data, (labels[0], labels[1]), Declaration(file, line), "data source", base)
    elif kind == "module" and labels:
        source = _token_text(_attribute(attrs["source"])[1]) if "source" in attrs else None
        _declare(module, module.modules, labels[0], Declaration(file, line, frozenset(attrs), source), "module", base)
        for name, attr in attrs.items():
            if name not in _MODULE_META_ARGUMENTS:
                module.module_arguments.append((labels[0], name, file, _line(attr)))
        if "providers" in attrs:
            _load_module_providers(module, labels[0], _attribute(attrs["providers"])[1], file)
    elif kind == "provider" and labels:
        alias = _token_text(_attribute(attrs["alias"])[1]) if "alias" in attrs else None
        module.provider_configs.add(f"{labels[0]}.{alias}" if alias else labels[0])
    elif kind == "terraform":
        _load_terraform_block(module, body)
        return  # backend and required_providers hold no references to check
    if kind in _ADDRESS_ONLY_BLOCKS:
        return
    _collect_references(module, file, body, top_level=kind in ("resource", "data", "module"))


def _load_terraform_block(module: Module, body: Tree) -> None:
    for item in _body_items(body):
        if item.data != "block" or _block(item)[0] != "required_providers":
            continue
        for name, attr in _attributes(_block(item)[2]).items():
            module.provider_configs.add(name)
            refs: list[Reference] = []
            _scan(_attribute(attr)[1], Path(), refs)
            for ref in refs:  # configuration_aliases = [aws.source]
                if ref.root == name and ref.steps:
                    module.provider_configs.add(f"{name}.{ref.steps[0]}")


def _load_module_providers(module: Module, call: str, expression: Tree, file: Path) -> None:
    """`providers = { aws.source = aws.source }`: (call, child side, parent side) pairs."""
    for elem in expression.iter_subtrees_topdown():
        if elem.data != "object_elem":
            continue
        key_refs: list[Reference] = []
        value_refs: list[Reference] = []
        _scan(elem.children[0], file, key_refs)
        _scan(elem.children[-1], file, value_refs)
        if key_refs and value_refs:
            module.module_providers.append((call, key_refs[0], value_refs[0]))


def _collect_references(module: Module, file: Path, body: Tree, top_level: bool) -> None:
    for item in _body_items(body):
        if item.data == "block":
            kind, labels, inner = _block(item)
            if kind == "dynamic" and labels:
                iterator = _attributes(inner).get("iterator")
                module.iteration_symbols.add(_token_text(_attribute(iterator)[1]) if iterator else labels[0])
            if kind not in _ADDRESS_ONLY_BLOCKS:
                _collect_references(module, file, inner, top_level=False)
            continue
        name, expression = _attribute(item)
        for intro in expression.iter_subtrees():
            if intro.data == "for_intro":
                module.iteration_symbols.update(
                    _token_text(c) for c in intro.children if isinstance(c, Tree) and c.data == "identifier")
        if top_level and name == "providers":
            continue  # checked as provider pairs
        refs: list[Reference] = []
        _scan(expression, file, refs)
        if top_level and name == "provider":
            module.provider_references.extend(refs)
        else:
            module.references.extend(refs)


# -------------------------------------------------------------------------------------------------
# Checking
# -------------------------------------------------------------------------------------------------


def _local_child(module: Module, call: str) -> Path | None:
    source = module.modules[call].source
    if source and source.startswith(("./", "../")):
        return (module.path / source).resolve()
    return None


def check_module(path: Path, base: Path | None = None, _cache: dict[Path, Module] | None = None) -> list[Finding]:
    """All findings of the module in folder `path` (paths relative to `base`, default `path`)."""
    base = base or path
    cache = _cache if _cache is not None else {}
    module = load_module(path, base)
    findings = list(module.findings)

    def child(call: str) -> Module | None:
        target = _local_child(module, call)
        if target is None or not target.is_dir():
            return None
        if target not in cache:
            cache[target] = load_module(target, base)
        return cache[target]

    def report(ref: Reference, code: str, message: str) -> None:
        findings.append(Finding(_rel(ref.file, base), ref.line, code, message))

    for ref in module.references:
        _check_reference(module, ref, report, child)

    used = {ref.steps[0] for ref in module.references if ref.root == "var" and ref.steps}
    for name, decl in sorted(module.variables.items()):
        if name not in used:
            findings.append(Finding(_rel(decl.file, base), decl.line, "unused-variable",
                                    f"variable {name} is declared but never used"))

    # A bare provider name is always valid (its default configuration exists implicitly); an
    # aliased one must be configured (root) or declared in configuration_aliases (module).
    for ref in module.provider_references:
        if ref.steps and ref.text not in module.provider_configs:
            report(ref, "undeclared-provider", f"{ref.text}: no provider configuration or configuration alias {ref.text}")

    for call, child_side, parent_side in module.module_providers:
        if parent_side.steps and parent_side.text not in module.provider_configs:
            report(parent_side, "undeclared-provider",
                   f"{parent_side.text}: no provider configuration {parent_side.text} to pass to module {call}")
        callee = child(call)
        if callee is not None and child_side.steps and child_side.text not in callee.provider_configs:
            report(child_side, "unknown-module-provider",
                   f"module {call} declares no provider {child_side.text} (configuration_aliases)")

    for call, argument, file, line in module.module_arguments:
        callee = child(call)
        if callee is not None and argument not in callee.variables:
            findings.append(Finding(_rel(file, base), line, "unknown-module-argument",
                                    f"module {call} has no variable {argument}"))
    for call, decl in module.modules.items():
        callee = child(call)
        if callee is None:
            if _local_child(module, call) is not None:
                findings.append(Finding(_rel(decl.file, base), decl.line, "missing-module-source",
                                        f"module {call}: source folder {decl.source} does not exist"))
            continue
        for name, variable in sorted(callee.variables.items()):
            if "default" not in variable.attributes and name not in decl.attributes:
                findings.append(Finding(_rel(decl.file, base), decl.line, "missing-module-argument",
                                        f"module {call} needs variable {name} (it has no default)"))

    return sorted(set(findings))


def _check_reference(module: Module, ref: Reference, report, child) -> None:
    steps = ref.steps
    first = steps[0] if steps else None
    if ref.root in _BUILTIN_ROOTS or first is None or first == _INDEX:
        return
    if ref.root == "var":
        if first not in module.variables:
            report(ref, "undeclared-reference", f"var.{first}: no variable \"{first}\" in this module")
    elif ref.root == "local":
        if first not in module.locals:
            report(ref, "undeclared-reference", f"local.{first}: no local value \"{first}\" in this module")
    elif ref.root == "module":
        if first not in module.modules:
            report(ref, "undeclared-reference", f"module.{first}: no module \"{first}\" in this module")
            return
        callee = child(first)
        if callee is not None and len(steps) > 1 and steps[1] != _INDEX and steps[1] not in callee.outputs:
            report(ref, "unknown-module-output", f"module.{first}.{steps[1]}: module {first} has no output \"{steps[1]}\"")
    elif ref.root == "data":
        if len(steps) < 2 or steps[1] == _INDEX:
            report(ref, "undeclared-reference", f"{ref.text}: a data source reference needs data.TYPE.NAME")
        elif (first, steps[1]) not in module.data:
            report(ref, "undeclared-reference", f"data.{first}.{steps[1]}: no data \"{first}\" \"{steps[1]}\" in this module")
    # Any provider_type.name is a resource address: a reference to a resource of a provider the
    # module never declares is as dangling as a typo.
    elif (_RESOURCE_TYPE.match(ref.root) and ref.root not in module.iteration_symbols
          and (ref.root, first) not in module.resources):
        report(ref, "undeclared-reference", f"{ref.root}.{first}: no resource \"{ref.root}\" \"{first}\" in this module")


def module_folders(root: Path) -> list[Path]:
    """Every folder under `root` (itself included) that holds `.tf` files, skipping `.terraform`."""
    folders = {file.parent for file in root.rglob("*.tf") if ".terraform" not in file.parts}
    return sorted(folders)


def check_tree(root: Path) -> list[Finding]:
    """Findings of every module folder under `root`, paths relative to `root`."""
    cache: dict[Path, Module] = {}
    findings: list[Finding] = []
    for folder in module_folders(root):
        findings.extend(check_module(folder, base=root, _cache=cache))
    return sorted(set(findings))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path, default=[Path(__file__).resolve().parent.parent],
                        help="folders to check (every sub-folder with .tf files is a module)")
    args = parser.parse_args(argv)
    findings: list[Finding] = []
    count = 0
    for folder in args.folders:
        count += len(module_folders(folder))
        findings.extend(check_tree(folder))
    for finding in findings:
        print(finding)
    print(f"refcheck: {count} module folder(s), {len(findings)} finding(s)", file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
