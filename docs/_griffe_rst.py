"""A griffe extension: the reStructuredText inside our Google-style docstrings, as Markdown.

The library's docstrings follow Optax's model (STYLE.md, practice 5): Google sections (``Args:``,
``Returns:``, ``Raises:``) around reST maths and roles, which ``help()``, IDEs and Sphinx read.
mkdocstrings parses the sections itself but renders the text as Markdown, so before it does, this
extension rewrites what Markdown would misread:

- ``.. math::`` blocks -> ``$$ ... $$`` (pymdownx.arithmatex, typeset by the vendored MathJax);
- ``:math:`x``` -> ``$x$``;
- ``:func:`name``` and the other Python roles -> a cross-reference to the object when the name
  resolves in the loaded package (relative to the docstring's own scope, as Sphinx does), else
  inline code; links are emitted as *optional* autorefs, which render as plain code rather than
  failing the strict build when the target is not on any page (a private helper);
- reST simple tables (``====  ====`` borders) -> Markdown tables;
- ``:sub:`x``` -> ``<sub>x</sub>``; a paragraph ending in ``::`` -> ``:`` (the indented block
  after it is a Markdown code block already).

Double-backtick literals need nothing: Markdown reads ````x```` as code too.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

_ROLE = re.compile(r":(func|class|meth|attr|mod|data|exc|obj):`(~?)([^`<]+?)(?:\s*<([^`>]+)>)?`")
_MATH = re.compile(r"(?<![\w`]):math:`([^`]+)`")
_SUB = re.compile(r"\\?\s?:sub:`([^`]+)`")
_BORDER = re.compile(r"^(\s*)(=+)(\s+=+)+\s*$")
_DIRECTIVE = re.compile(r"^(\s*)\.\. math::\s*(.*)$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _math_blocks(lines: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _DIRECTIVE.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        pad, first = m.group(1), m.group(2)
        body = [first.strip()] if first.strip() else []
        i += 1
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > len(pad)):
            body.append(lines[i].strip())
            i += 1
        while body and not body[-1]:
            body.pop()
        # the options and labels of Sphinx's directive are not maths
        body = [b for b in body if not re.match(r":(label|nowrap):", b)]
        if out and out[-1].strip():
            out.append("")
        out.extend([f"{pad}$$", *(f"{pad}{b}" for b in body if b), f"{pad}$$"])
        if i < len(lines) and lines[i].strip():
            out.append("")
    return out


def _split_row(line: str, starts: list[int]) -> list[str]:
    cells = []
    for j, s in enumerate(starts):
        e = starts[j + 1] if j + 1 < len(starts) else len(line)
        cells.append(line[s:e].strip())
    return cells


def _rows(block: list[str], starts: list[int]) -> list[list[str]]:
    rows: list[list[str]] = []
    for line in block:
        if not line.strip():
            continue
        cells = _split_row(line, starts)
        if rows and not cells[0]:  # a continuation line of the previous row
            rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells, strict=True)]
        else:
            rows.append(cells)
    return rows


def _simple_tables(lines: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _BORDER.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        starts = [k.start() for k in re.finditer(r"=+", lines[i])]
        segments: list[list[str]] = []
        while True:  # border, lines, border [, lines, border]
            i += 1
            block = []
            while i < len(lines) and not _BORDER.match(lines[i]):
                block.append(lines[i])
                i += 1
            segments.append(block)
            if i + 1 < len(lines) and lines[i + 1].strip() and not _BORDER.match(lines[i + 1]):
                continue  # that border separated the header from the body
            i += 1
            break
        header = _rows(segments[0], starts) if len(segments) > 1 else [[""] * len(starts)]
        body = [r for seg in segments[1 if len(segments) > 1 else 0 :] for r in _rows(seg, starts)]
        pad = m.group(1)
        if out and out[-1].strip():
            out.append("")
        for n, r in enumerate([header[0], *header[1:], *body]):
            out.append(pad + "| " + " | ".join(c.replace("|", r"\|") for c in r) + " |")
            if n == 0:
                out.append(pad + "|" + "---|" * len(starts))
        out.append("")
    return out


def _resolve(name: str, scope: griffe.Object, collection: Any) -> str | None:
    """The full path ``name`` means in ``scope``'s docstring, or None."""
    name = name.strip().removesuffix("()")
    candidates = []
    obj: griffe.Object | None = scope
    while obj is not None:
        candidates.append(f"{obj.path}.{name}")
        obj = obj.parent
    candidates.append(name)
    for path in candidates:
        try:
            target = collection.get_member(path)
        except Exception:
            continue
        try:
            return str(target.path)
        except Exception:
            return path
    return None


_SECTION = re.compile(r"^(\s*)(Args|Arguments|Parameters|Raises|Attributes):\s*$")
_ITEM = {
    "Raises": re.compile(r"^[A-Z][\w.]*(\s*/\s*[A-Z][\w.]*)*\s*:"),
    "other": re.compile(r"^\*{0,2}[A-Za-z_][\w]*(\s*,\s*[A-Za-z_]\w*)*(\s*\([^)]*\))?\s*:"),
}
_EXCEPTIONS = re.compile(r"^([A-Z]\w*(?:\s*/\s*[A-Z]\w*)*)\s+(\S.*)$")


def _sections(lines: list[str]) -> list[str]:
    """Our Google sections as griffe's parser reads them.

    The project writes an item's continuation lines at the item's own indentation when they
    follow a sentence (``TypeError: ... ValueError: ... not``/``positive.``); griffe wants them
    indented deeper. Several names documented together (``p, q: ...``) become one item each.
    A ``Raises:`` item that names its exceptions without a colon gets one after the names.
    """
    out: list[str] = []
    section: str | None = None
    item_indent = -1
    for line in lines:
        m = _SECTION.match(line)
        if m:
            section, item_indent = m.group(2), -1
            out.append(line)
            continue
        if section is None:
            out.append(line)
            continue
        if not line.strip():
            section = None
            out.append(line)
            continue
        ind = _indent(line)
        if item_indent < 0:
            item_indent = ind
        if ind < item_indent:
            section = None
            out.append(line)
            continue
        body = line.strip()
        if ind > item_indent:
            out.append(line)
            continue
        pattern = _ITEM["Raises" if section == "Raises" else "other"]
        if pattern.match(body):
            names, _, desc = body.partition(":")
            if section != "Raises" and "," in names and "(" not in names:
                out.extend(" " * ind + f"{n.strip()}:{desc}" for n in names.split(","))
            else:
                out.append(line)
        elif section == "Raises" and _SECTION.match(out[-1]) and (e := _EXCEPTIONS.match(body)):
            out.append(" " * ind + f"{e.group(1)}: {e.group(2)}")
        else:  # a continuation line written at the item's indentation
            out.append(" " * (ind + 4) + body)
    return out


def convert(text: str, scope: griffe.Object, collection: Any) -> str:
    """``text`` (a docstring of ``scope``) with its reST rewritten as Markdown."""
    lines = _sections(_simple_tables(_math_blocks(text.split("\n"))))
    text = "\n".join(lines)
    text = _MATH.sub(lambda m: f"${m.group(1).strip()}$", text)
    text = _SUB.sub(lambda m: f"<sub>{m.group(1)}</sub>", text)

    def role(m: re.Match[str]) -> str:
        tilde, title, target = m.group(2), m.group(3).strip(), m.group(4)
        ident = (target or title).strip().removeprefix("~")
        shown = title.removeprefix("~")
        if tilde and target is None:
            shown = shown.rsplit(".", 1)[-1]
        path = _resolve(ident, scope, collection)
        if path is None:
            return f"`{shown}`"
        return (
            f'<autoref identifier="{html.escape(path)}" optional>'
            f"<code>{html.escape(shown)}</code></autoref>"
        )

    text = _ROLE.sub(role, text)
    return re.sub(r"(\S)::$", r"\1:", text, flags=re.MULTILINE)


class RestToMarkdown(griffe.Extension):
    """Rewrites every docstring of the loaded package once it is loaded (names then resolve)."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        seen: set[int] = set()
        self._walk(pkg, loader.modules_collection, seen)

    def _walk(self, obj: griffe.Object, collection: Any, seen: set[int]) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value, obj, collection)
        for member in obj.members.values():
            if isinstance(member, griffe.Alias):
                continue
            self._walk(member, collection, seen)
