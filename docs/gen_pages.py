"""Generates the pages that list names or numbers, at every build (mkdocs-gen-files runs it).

Nothing here is a list kept by hand: the API reference comes from each public module's
``__all__``, the estimator tables from ``gumbel_softmax.estimators.available()`` and the
capabilities each class declares, the experiment pages from every committed
``benchmarks/*/*.json``, the estimator numbers from the committed (generated)
``benchmarks/estimators/results.md``, and the tutorials' output from running them now. A module,
estimator or results file added to the code appears in the site at the next build.
"""

from __future__ import annotations

import ast
import importlib
import json
import math
import os
import pkgutil
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
sys.path.insert(0, str(ROOT / "src"))

import gumbel_softmax  # noqa: E402
import gumbel_softmax.estimators as est  # noqa: E402

# Modules of the research side are documented by the CLI and the experiment pages.
EXCLUDED = ("gumbel_softmax.lab",)
TUTORIAL_TIMEOUT_S = 120
nav = mkdocs_gen_files.Nav()


def write(path: str, text: str) -> None:
    with mkdocs_gen_files.open(path, "w") as f:
        f.write(text)


def copy(src: Path, dest: str) -> None:
    with mkdocs_gen_files.open(dest, "wb") as f:
        f.write(src.read_bytes())


# ---------------------------------------------------------------------------------- the reference
def public_modules() -> list[str]:
    """``gumbel_softmax`` and its public modules (no ``_`` in the path, not the lab), sorted."""
    names = ["gumbel_softmax"]
    for info in pkgutil.walk_packages(gumbel_softmax.__path__, "gumbel_softmax."):
        parts = info.name.split(".")
        if any(p.startswith("_") for p in parts) or info.name.startswith(EXCLUDED):
            continue
        names.append(info.name)
    return names


def exported(module: str) -> list[str]:
    mod = importlib.import_module(module)
    names = getattr(mod, "__all__", None)
    if names is None:
        raise SystemExit(f"gen_pages: public module {module} has no __all__")
    return list(names)


def page_of(module: str) -> str:
    """The page documenting a public namespace: a package, or a module directly below the top."""
    parts = module.split(".")
    return ".".join(parts[:2])


def reference() -> dict[str, str]:
    """Writes reference/<namespace>.md; returns {full name: page} for every public name."""
    modules = public_modules()
    pages: dict[str, list[str]] = {}
    for m in modules:
        pages.setdefault(page_of(m), []).append(m)
    documented: dict[int, str] = {}  # id(object) -> the path its full entry is under
    where: dict[str, str] = {}
    order = ["gumbel_softmax", *sorted(p for p in pages if p != "gumbel_softmax")]
    for page in order:
        lines = [
            f"::: {page}",
            "    options:",
            "      members: false",
            "      heading_level: 1",
            "",
        ]
        if page == "gumbel_softmax.estimators":
            lines += estimator_registry_table(), ""
        seealso: list[tuple[str, str, str]] = []
        for m in pages[page]:
            if m != page:
                lines += [
                    f"## `{m}`",
                    "",
                    f"::: {m}",
                    "    options:",
                    "      members: false",
                    "      show_root_heading: false",
                    "      show_root_toc_entry: false",
                    "",
                ]
            for name in exported(m):
                obj = getattr(importlib.import_module(m), name)
                path = f"{m}.{name}"
                where[path] = f"reference/{page}.md"
                key = id(obj) if not isinstance(obj, (str, int, float, bool, tuple)) else hash(path)
                if key in documented:
                    seealso.append((path, name, documented[key]))
                    continue
                documented[key] = path
                lines += [f"::: {path}"]
                if not (callable(obj) or isinstance(obj, type)):
                    lines += ["    options:", "      show_if_no_docstring: true"]
                lines += [""]
        if seealso:
            lines += ["## Documented elsewhere", "", "| name | documented as |", "|---|---|"]
            for path, _name, target in seealso:
                lines.append(f'| <span id="{path}"></span>`{path}` | [`{target}`][{target}] |')
            lines.append("")
        write(f"reference/{page}.md", "\n".join(lines))
    index = [
        "# API reference",
        "",
        "Generated from the docstrings of every public module: each name in a module's "
        "`__all__` is documented in full once (under the shortest public path that exports "
        "it) and listed on the other modules' pages that re-export it. The research side, "
        "`gumbel_softmax.lab`, is described by its command line (`gumbel-softmax --help`) and "
        "the [experiment pages](../experiments/index.md).",
        "",
        "| module | public names |",
        "|---|---|",
    ]
    for page in order:
        names = sorted({n for m in pages[page] for n in exported(m)})
        index.append(f"| [`{page}`]({page}.md) | {len(names)} |")
    write("reference/index.md", "\n".join(index) + "\n")
    with mkdocs_gen_files.open("reference/names.json", "w") as f:
        json.dump(where, f, indent=1)
    return {p: f"reference/{p}.md" for p in order}


# ------------------------------------------------------------------------------ the estimators
def capabilities() -> list[str]:
    """The capability attributes the base class declares (``ClassVar`` annotations)."""
    out = []
    for klass in reversed(est.Estimator.__mro__):
        for name, ann in getattr(klass, "__annotations__", {}).items():
            if "ClassVar" in str(ann) and name != "registry_name" and name not in out:
                out.append(name)
    return out


def paper(cls: type) -> str:
    """The arXiv ids in the class docstring, as links."""
    ids = dict.fromkeys(re.findall(r"arXiv:\s?(\d{4}\.\d{4,5})", cls.__doc__ or ""))
    return ", ".join(f"[{i}](https://arxiv.org/abs/{i})" for i in ids) or "—"


def public_path(cls: type) -> str:
    for name in est.__all__:
        if getattr(est, name, None) is cls:
            return f"gumbel_softmax.estimators.{name}"
    raise SystemExit(
        f"gen_pages: estimator {cls.registry_name!r} ({cls.__module__}.{cls.__qualname__}) is "
        "registered but not exported in gumbel_softmax.estimators.__all__, so the reference "
        "cannot document it"
    )


def fmt_cap(value: Any) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "—"
    if value is None:
        return "none"
    if isinstance(value, str):
        return f"`{value}`"
    if isinstance(value, (int, float)):
        return f"{value:g}"
    if isinstance(value, (tuple, list, set, frozenset)):
        return ", ".join(fmt_cap(v) for v in value) or "—"
    return f"`{value!r}`"


def estimator_registry_table() -> str:
    caps = capabilities()
    times: dict[str, list[float]] = {}
    for r in estimator_measurements():
        times.setdefault(r["estimator"], []).append(float(r["x torch"]))
    head = "| name | class | " + " | ".join(f"`{c}`" for c in caps) + " | papers | time × torch |"
    rows = [head, "|" + "---|" * (len(caps) + 4)]
    for name in est.available():
        cls = est.estimator_class(name)
        link = f"[`{cls.__name__}`][{public_path(cls)}]"
        cells = [fmt_cap(getattr(cls, c)) for c in caps]
        t = f"{statistics.median(times[name]):.2f}" if name in times else "not measured"
        rows.append(f"| `{name}` | {link} | " + " | ".join(cells) + f" | {paper(cls)} | {t} |")
    intro = (
        f"## Registered estimators\n\nThe {len(est.available())} names of "
        "`estimators.available()`, with the capabilities each class declares (read without "
        "building it: `estimator_class(name).unbiased`); the docstring of each class gives its "
        "formula, paper and cost. *time × torch*: the median over the toy problems of its time per "
        "estimate over `F.gumbel_softmax(hard=True)`'s (`benchmarks/estimators/results.md`); "
        "bias and variance: [choosing an estimator](../guides/choosing.md).\n\n"
    )
    return intro + "\n".join(rows)


MEASUREMENT_COLUMNS = [
    "problem", "estimator", "τ", "bias ±", "variance", "MSE", "rel", "cos", "cos1", "us", "x torch"
]  # fmt: skip


def estimator_measurements() -> list[dict[str, str]]:
    """The rows of the 'All measurements' table of benchmarks/estimators/results.md.

    That file is generated by benchmarks/estimators/bench.py ("do not edit"); its header is
    checked here so that a change of format stops the build instead of misreading columns."""
    text = (ROOT / "benchmarks/estimators/results.md").read_text()
    section = text.split("## All measurements", 1)[1]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    if header != MEASUREMENT_COLUMNS:
        raise SystemExit(f"gen_pages: benchmarks/estimators/results.md columns changed: {header}")
    return [
        dict(zip(header, (c.strip() for c in ln.strip("|").split("|")), strict=True))
        for ln in lines[2:]
    ]


def choosing_tables() -> dict[str, str]:
    rows = estimator_measurements()
    names = est.available()
    caps = {n: est.estimator_class(n) for n in names}
    questions = [
        ("I need an unbiased gradient of $\\mathbb E f(z)$", lambda c: c.unbiased),
        ("my variables have K > 2 classes", lambda c: not c.binary_only),
        (
            "$f$ is defined only at one-hot $z$ (never called off the vertices)",
            lambda c: not c.evaluates_relaxed,
        ),
        ("I want no temperature to tune", lambda c: c.temperature_kind is None),
        (
            "I want no learned parts (no baseline or control-variate network)",
            lambda c: not c.needs_event_shape and c.temperature_kind != "learned",
        ),
        ("some classes are masked with `-inf` logits", lambda c: c.supports_masks),
    ]
    decision = ["| if ... | the estimators that qualify |", "|---|---|"]
    for question, ok in questions:
        fits = [f"`{n}`" for n in names if ok(caps[n])]
        decision.append(f"| {question} | {', '.join(fits) or '—'} |")

    by: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by.setdefault(r["estimator"], []).append(r)

    def num(s: str) -> float:
        return float(s.split("±")[0])

    problems = list(dict.fromkeys(r["problem"] for r in rows))
    summary = [
        "| estimator | unbiased | " + " | ".join(problems) + " | median time × torch |",
        "|" + "---|" * (len(problems) + 3),
    ]
    for n in names:
        rs = by.get(n, [])
        cells = []
        for p in problems:
            mine = [r for r in rs if r["problem"] == p]
            if not mine:
                cells.append("n/a" if rs else "")
                continue
            best = min(mine, key=lambda r: num(r["rel"]))
            tau = "" if best["τ"] == "-" else f" (τ {best['τ']})"
            cells.append(f"{num(best['rel']):.3g}{tau}")
        ratio = f"{statistics.median(num(r['x torch']) for r in rs):.2f}" if rs else "not measured"
        summary.append(
            f"| `{n}` | {fmt_cap(caps[n].unbiased)} | " + " | ".join(cells) + f" | {ratio} |"
        )
    machine = re.search(
        r"^- Machine: (.*)$", (ROOT / "benchmarks/estimators/results.md").read_text(), re.M
    )
    return {
        "decision-table": "\n".join(decision),
        "estimator-numbers": "\n".join(summary),
        "estimator-machine": machine.group(1) if machine else "see results.md",
    }


# ------------------------------------------------------------------------------ the experiments
def fmt(v: Any) -> str:
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.2f}" if abs(v) >= 1 else f"{v:.3g}"
    if v is None:
        return "—"
    if isinstance(v, str) and re.fullmatch(r"[0-9a-f]{40}", v):
        return v[:8]  # a git revision
    return str(v).replace("|", r"\|")


def flatten(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        elif isinstance(v, list) and any(isinstance(x, (list, dict)) for x in v):
            out[prefix + k] = f"({len(v)} points)"  # a series (a curve): not a table cell
        elif isinstance(v, list):
            out[prefix + k] = ", ".join(map(str, v)) or "—"
        else:
            out[prefix + k] = v
    return out


def commands(script: Path) -> list[str]:
    """The command lines in a benchmark script's docstring (``python benchmarks/...``)."""
    doc = ast.get_docstring(ast.parse(script.read_text())) or ""
    out, lines = [], doc.splitlines()
    i = 0
    while i < len(lines):
        if "python benchmarks/" in lines[i]:
            cmd = [lines[i].strip()]
            while cmd[-1].endswith("\\") and i + 1 < len(lines):
                i += 1
                cmd.append("    " + lines[i].strip())
            out.append("\n".join(cmd))
        i += 1
    return out


def experiment_page(path: Path) -> tuple[str, str]:
    """(title, markdown) for one committed benchmarks/<dir>/<name>.json of result rows."""
    rel = path.relative_to(ROOT)
    data = json.loads(path.read_text())
    common: dict[str, Any] = {}
    if isinstance(data, dict):  # {"rows": [...], other keys: common to every row}, or one row
        lists = [k for k, v in data.items() if isinstance(v, list) and v and isinstance(v[0], dict)]
        if lists:
            common = {k: v for k, v in data.items() if k != lists[0]}
            data = data[lists[0]]
        else:
            data = [data]
    rows = [flatten({**common, **r}) for r in data if isinstance(r, dict)]
    md_twin = path.with_suffix(".md")
    title = (
        path.parent.name.upper() if path.stem == "results" else f"{path.parent.name}: {path.stem}"
    )
    if md_twin.exists():
        first = md_twin.read_text().splitlines()[0]
        if first.startswith("# "):
            title = first[2:].strip()
    scripts = [path.with_suffix(".py"), path.parent / "run.py", path.parent / "bench.py"]
    script = next((s for s in scripts if s.exists()), None)
    out = [f"# {title}", ""]
    out.append(
        f"Generated at build time from the committed `{rel}` ({len(rows)} rows), so this page "
        "cannot disagree with it"
        + (
            f"; the repository's own rendering is `{md_twin.relative_to(ROOT)}`."
            if md_twin.exists()
            else "."
        )
    )
    out.append("")
    if script is not None:
        doc = ast.get_docstring(ast.parse(script.read_text())) or ""
        para = doc.split("\n\n", 1)[0].replace("\n", " ")
        out += [f"**What it measures** (from `{script.relative_to(ROOT)}`): {para}", ""]
        cmds = commands(script)
        if cmds:
            out += ["## Command", "", "```sh", *cmds, "```", ""]
    if rows:
        keys = list(dict.fromkeys(k for r in rows for k in r))
        if len(rows) == 1:  # one run: its top-level values are the results, the rest config
            constant = {k: rows[0].get(k) for k in keys if "." in k}
        else:
            constant = {
                k: rows[0].get(k) for k in keys if all(r.get(k) == rows[0].get(k) for r in rows)
            }
        varying = [k for k in keys if k not in constant]
        # a setting repeated at the top level with the same values is shown once
        varying = [
            k
            for k in varying
            if not (
                k.startswith("settings.")
                and k.split(".", 1)[1] in varying
                and all(r.get(k) == r.get(k.split(".", 1)[1]) for r in rows)
            )
        ]
        # the results first (short top-level values), the rest (settings, machine, long
        # strings) in a second table with the same row numbers
        main = [k for k in varying if "." not in k and max(len(fmt(r.get(k))) for r in rows) <= 30]
        rest = [k for k in varying if k not in main]

        def kind(k: str) -> int:
            """Short labels first, then measurements, counts, and long labels (runs, hashes)."""
            values = [r.get(k) for r in rows if r.get(k) is not None]
            if any(isinstance(v, str) for v in values):
                long = any(
                    len(fmt(v)) > 14 or re.fullmatch(r"[0-9a-f]{40}", str(v)) for v in values
                )
                return 3 if long else 0
            return 1 if any(isinstance(v, float) for v in values) else 2

        main.sort(key=kind)
        for heading, cols in (("Results", main), ("Settings and details of each row", rest)):
            if not cols:
                continue
            out += [f"## {heading}", "", "| # | " + " | ".join(cols) + " |"]
            out += ["|" + "---|" * (len(cols) + 1)]
            out += [
                f"| {i} | " + " | ".join(fmt(r.get(k)) for k in cols) + " |"
                for i, r in enumerate(rows, 1)
            ]
            out.append("")
        out += ["## Config common to every row", "", "| key | value |", "|---|---|"]
        out += [f"| `{k}` | {fmt(v)} |" for k, v in constant.items()]
        out.append("")
    figures = sorted(path.parent.glob(f"{path.stem}*.png"))
    if path.stem == "results":  # the directory's main results: its other figures too
        claimed = {
            f for j in path.parent.glob("*.json") for f in path.parent.glob(f"{j.stem}*.png")
        }
        figures += sorted(set(path.parent.glob("*.png")) - claimed)
        figures += sorted((path.parent / "figures").glob("**/*.png"))
    if figures:
        out += ["## Figures", ""]
        for fig in figures:
            dest = f"experiments/{path.parent.name}/{fig.relative_to(path.parent).as_posix()}"
            copy(fig, dest)
            target = fig.relative_to(path.parent).as_posix()
            out += [
                f"![{target}]({path.parent.name}/{target}){{ loading=lazy }}",
                "",
                f"*{target}*",
                "",
            ]
    return title, "\n".join(out)


def experiments() -> list[tuple[str, str]]:
    pages = []
    for path in sorted(ROOT.glob("benchmarks/*/*.json")):
        title, text = experiment_page(path)
        dest = f"experiments/{path.parent.name}-{path.stem}.md"
        write(dest, text)
        pages.append((title, dest))
    index = [
        "# Experiments",
        "",
        "One page per committed results file (`benchmarks/*/*.json`), generated at build time; "
        "a new experiment's results appear here once its JSON is committed. Speed benchmarks "
        "(markdown only): `benchmarks/core/results.md`, `benchmarks/kernels/results.md`; "
        "the estimators' toy problems: [choosing an estimator](../guides/choosing.md).",
        "",
    ]
    index += [f"- [{t}]({Path(d).name})" for t, d in pages]
    write("experiments/index.md", "\n".join(index) + "\n")
    return pages


# -------------------------------------------------------------------------------- the tutorials
REQUIRES = re.compile(r"^# requires: (\w+)(.*)$", re.M)


def missing_requirement(script: Path) -> str | None:
    """A ``# requires: module (how to install)`` line of a tutorial whose module is absent."""
    for m in REQUIRES.finditer(script.read_text()):
        if importlib.util.find_spec(m.group(1)) is None:
            return m.group(1) + m.group(2)
    return None


def start_tutorials() -> list[tuple[Path, subprocess.Popen[str] | str, float]]:
    """Starts every docs/tutorials/*.py at once (they overlap with the rest of the build); a
    tutorial whose ``# requires:`` module is not installed is not run, and its page says so."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    running: list[tuple[Path, subprocess.Popen[str] | str, float]] = []
    for script in sorted((DOCS / "tutorials").glob("*.py")):
        missing = missing_requirement(script)
        if missing is not None:
            running.append((script, missing, 0.0))
            continue
        proc = subprocess.Popen(
            [sys.executable, str(script)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        running.append((script, proc, time.perf_counter()))
    return running


def tutorials(
    running: list[tuple[Path, subprocess.Popen[str] | str, float]],
) -> list[tuple[str, str]]:
    """Writes tutorials/<name>.md for each script: its docstring, its code, and its output."""
    pages = []
    for script, proc, started in running:
        if isinstance(proc, str):
            stdout, run_note = (
                None,
                (
                    f"This page is a script, `docs/tutorials/{script.name}`, that the documentation "
                    f"build runs where its requirement is installed; it was **not run in this "
                    f"build**: it needs `{proc.strip()}`."
                ),
            )
        else:
            stdout, run_note = _finish(script, proc, started)
        source = script.read_text()
        doc = ast.get_docstring(ast.parse(source)) or ""
        title, _, intro = doc.partition("\n")
        body = source.split('"""', 2)[2].lstrip("\n") if source.startswith('"""') else source
        body = REQUIRES.sub("", body).lstrip("\n")
        text = [f"# {title.strip()}", "", intro.strip(), "", run_note, ""]
        text += ["```python", body.rstrip(), "```", ""]
        if stdout is not None:
            text += ["Output:", "", "```text", stdout.rstrip(), "```", ""]
        dest = f"tutorials/{script.stem}.md"
        write(dest, "\n".join(text))
        pages.append((title.strip(), dest))
    return pages


def _finish(script: Path, proc: subprocess.Popen[str], started: float) -> tuple[str, str]:
    """The output of a started tutorial and the sentence saying how it ran."""
    try:
        stdout, stderr = proc.communicate(timeout=TUTORIAL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise SystemExit(
            f"gen_pages: tutorial {script.name} ran past {TUTORIAL_TIMEOUT_S} s"
        ) from None
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"gen_pages: tutorial {script.name} failed:\n{stderr[-3000:]}")
    note = (
        f"This page is a script, `docs/tutorials/{script.name}`, run by the documentation "
        f"build (this time in {seconds:.1f} s, wall clock, on one CPU thread, beside the "
        "other tutorials); the output below is that run's."
    )
    return stdout, note


# -------------------------------------------------------------------------------------- assets
def mathjax() -> None:
    """MathJax 3 (Apache-2.0) from the django-static-mathjax wheel: one file with every TeX
    package (so nothing is fetched lazily), served by the site itself."""
    spec = importlib.util.find_spec("mathjax")
    if spec is None or spec.origin is None:
        raise SystemExit("gen_pages: MathJax missing: pip install -e '.[docs]'")
    base = Path(spec.origin).parent / "static" / "mathjax"
    copy(base / "es5" / "tex-svg-full.js", "javascripts/mathjax/tex-svg-full.js")
    copy(base / "LICENSE", "javascripts/mathjax/LICENSE")


def fill(page: str, values: dict[str, str]) -> None:
    text = (DOCS / page).read_text()
    for key, value in values.items():
        text = text.replace(f"<!-- gen:{key} -->", value)
    if "<!-- gen:" in text:
        raise SystemExit(f"gen_pages: {page} has a placeholder nothing fills")
    write(page, text)


def kernel_results() -> str:
    """The committed kernel benchmarks (benchmarks/kernels/results*.md), headings demoted so
    that they sit under the guide's own; each file says the machine it was measured on."""
    parts = []
    for path in sorted((ROOT / "benchmarks/kernels").glob("results*.md")):
        text = re.sub(
            r"^(#+) ", lambda m: "#" * (len(m.group(1)) + 2) + " ", path.read_text(), flags=re.M
        )
        # its links are relative to its own folder, not to the page it is included in
        text = repository_links(text, path)
        parts.append(f"*From `{path.relative_to(ROOT)}`:*\n\n{text.strip()}\n")
    return "\n".join(parts) or "No kernel benchmark is committed yet."


_LINK = re.compile(r"\[([^\]]+)\]\(([^)#\s]+)(#[^)\s]*)?\)")


def repository_links(text: str, page: Path) -> str:
    """Links of a hand-written page to repository files outside docs/ (which the site does not
    hold) as the file's path in code: ``[its results](../benchmarks/x.md)`` -> ``its results
    (`benchmarks/x.md`)``. Links inside docs/ are left to mkdocs, which checks them."""

    def sub(m: re.Match[str]) -> str:
        if re.match(r"[a-z]+:", m.group(2)):
            return m.group(0)
        target = (page.parent / m.group(2)).resolve()
        if target.is_relative_to(DOCS) or not target.is_relative_to(ROOT) or not target.exists():
            return m.group(0)
        return f"{m.group(1)} (`{target.relative_to(ROOT).as_posix()}`)"

    return _LINK.sub(sub, text)


def backends_page() -> None:
    """docs/backends.md (hand-written, also read in the repository), with the committed kernel
    benchmarks appended."""
    text = repository_links((DOCS / "backends.md").read_text(), DOCS / "backends.md")
    text = text.rstrip() + (
        "\n\n## Measured\n\nThe committed results of `benchmarks/kernels/bench.py`, included at "
        "every build: the CPU run, and the CUDA run where one was made, each with its machine "
        "and its targets.\n\n" + kernel_results()
    )
    write("backends.md", text)


def main() -> None:
    running = start_tutorials()
    mathjax()
    refs = reference()
    copy(ROOT / "benchmarks/estimators/results.png", "guides/estimators-tradeoff.png")
    fill("guides/choosing.md", choosing_tables())
    backends_page()
    exps = experiments()
    tuts = tutorials(running)
    summary = [
        "* [Home](index.md)",
        "* Guides",
        "    * [Gumbel-Softmax and Concrete](guides/concrete.md)",
        "    * [Choosing an estimator](guides/choosing.md)",
        "    * [Kernels and backends](backends.md)",
        "    * [Sweeps, Ray and stacked training](guides/sweeps.md)",
        "* Tutorials",
        *(f"    * [{t}]({d})" for t, d in tuts),
        "* [Experiments](experiments/index.md)",
        *(f"    * [{t}]({d})" for t, d in exps),
        "* [API reference](reference/index.md)",
        *(f"    * [{p}]({d})" for p, d in refs.items()),
    ]
    write("SUMMARY.md", "\n".join(summary) + "\n")


main()
