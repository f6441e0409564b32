"""The documentation site: it builds with --strict (tutorials included), its reference holds every
public name and every registered estimator, every committed results file has its page, its
internal links resolve, and, where Chromium and Playwright are installed, it renders in a
browser without console errors and with its maths typeset (``make docs-check`` does the same)."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import gumbel_softmax
from gumbel_softmax.estimators import available

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    any(
        importlib.util.find_spec(m) is None for m in ("mkdocs", "mkdocstrings", "mkdocs_gen_files")
    ),
    reason="needs the docs extra: pip install -e '.[docs]'",
)


def _check_site():
    spec = importlib.util.spec_from_file_location("check_site", ROOT / "docs" / "check_site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, DISABLE_MKDOCS_2_WARNING="true", NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    return out


def public_names() -> list[tuple[str, str]]:
    """(module, name) for each name in the __all__ of every public module, walked here
    independently of the generator: the package and its modules without a private part,
    the research side (lab) aside."""
    modules = ["gumbel_softmax"]
    for info in pkgutil.walk_packages(gumbel_softmax.__path__, "gumbel_softmax."):
        if not any(p.startswith("_") for p in info.name.split(".")) and ".lab" not in info.name:
            modules.append(info.name)
    return [(m, n) for m in modules for n in importlib.import_module(m).__all__]


def test_every_public_name_has_an_entry_in_the_reference(site):
    pairs = public_names()
    assert len(pairs) > 100
    missing = []
    for module, name in pairs:
        page = site / "reference" / (".".join(module.split(".")[:2]) + ".html")
        if f'id="{module}.{name}"' not in page.read_text():
            missing.append(f"{module}.{name}")
    assert missing == []


def test_every_registered_estimator_is_in_the_registry_table_and_the_guide(site):
    reference = (site / "reference" / "gumbel_softmax.estimators.html").read_text()
    guide = (site / "guides" / "choosing.html").read_text()
    for name in available():
        assert f"<code>{name}</code>" in reference, name
        assert f"<code>{name}</code>" in guide, name


def test_docstring_maths_became_arithmatex_and_no_rest_is_left(site):
    for page in (site / "reference").glob("*.html"):
        text = page.read_text()
        assert ":math:`" not in text and ".. math::" not in text, page.name
        assert ":func:`" not in text and ":class:`" not in text, page.name
    assert 'class="arithmatex"' in (site / "reference" / "gumbel_softmax.html").read_text()


def test_the_site_serves_mathjax_itself_and_fetches_nothing(site):
    assert (site / "javascripts" / "mathjax" / "tex-svg-full.js").stat().st_size > 1_000_000
    for page in site.rglob("*.html"):
        text = page.read_text()
        assert "fonts.googleapis" not in text and "cdn.jsdelivr" not in text, page.name


def test_every_committed_results_file_has_an_experiment_page(site):
    for path in ROOT.glob("benchmarks/*/*.json"):
        page = site / "experiments" / f"{path.parent.name}-{path.stem}.html"
        assert page.is_file(), path
        data = json.loads(path.read_text())
        if isinstance(data, list):
            assert f"({len(data)} rows)" in page.read_text(), path


def test_every_tutorial_ran_and_its_output_is_on_its_page(site):
    scripts = sorted((ROOT / "docs" / "tutorials").glob("*.py"))
    assert len(scripts) >= 3
    for script in scripts:
        text = (site / "tutorials" / f"{script.stem}.html").read_text()
        required = re.findall(r"^# requires: (\w+)", script.read_text(), re.M)
        if all(importlib.util.find_spec(m) is not None for m in required):
            assert "Output:" in text and "run by the documentation" in text, script.name
        else:  # said so on the page, never a page without output that looks like one
            assert "not run in this" in text and "Output:" not in text, script.name


def test_internal_links_and_anchors_resolve(site):
    assert _check_site().broken_links(site) == []


def test_home_reference_and_guide_render_in_chromium(site, tmp_path):
    check = _check_site()
    chromium = check.find_chromium(None)
    if chromium is None or importlib.util.find_spec("playwright") is None:
        pytest.skip("needs Chromium and Playwright (make docs-check installs both)")
    problems, shots = check.browser_check(site, tmp_path, chromium)
    assert problems == []
    assert sorted(shots) == sorted(check.PAGES)
    assert all(p.stat().st_size > 10_000 for p in shots.values())


def test_the_check_refuses_a_missing_site(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        _check_site().main([str(tmp_path)])
    assert e.value.code == 2
    assert "holds no built site" in capsys.readouterr().err


def test_a_broken_link_is_reported(tmp_path):
    (tmp_path / "index.html").write_text('<a href="missing.html">x</a><a href="#nowhere">y</a>')
    problems = _check_site().broken_links(tmp_path)
    assert len(problems) == 2
    assert "missing file" in problems[0] and "missing anchor" in problems[1]


def test_the_readme_links_every_guide_and_tutorial_and_its_links_exist():
    readme = (ROOT / "README.md").read_text()
    pages = [
        ROOT / "docs" / "backends.md",
        *(ROOT / "docs" / "guides").glob("*.md"),
        *(ROOT / "docs" / "tutorials").glob("*.py"),
    ]
    for page in pages:
        assert f"]({page.relative_to(ROOT).as_posix()})" in readme, page.name
    for target in re.findall(r"\]\(((?:docs|benchmarks|src)/[^)#]+)\)", readme):
        assert (ROOT / target).exists(), target


def test_the_browser_check_catches_console_errors_missing_files_and_untypeset_maths(tmp_path):
    check = _check_site()
    chromium = check.find_chromium(None)
    if chromium is None or importlib.util.find_spec("playwright") is None:
        pytest.skip("needs Chromium and Playwright (make docs-check installs both)")
    site = tmp_path / "site"
    for rel in check.PAGES.values():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(
            '<html><body><span class="arithmatex">\\(x\\)</span><img src="missing.png">'
            '<script>console.error("boom")</script></body></html>'
        )
    problems, _ = check.browser_check(site, tmp_path / "shots", chromium)
    text = "\n".join(problems)
    assert "console error: boom" in text
    assert "HTTP 404" in text and "missing.png" in text
    assert "MathJax did not load" in text
