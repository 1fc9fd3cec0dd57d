"""The interactive page (issue 18), in a real browser: Debian's chromium, headless, driven by Playwright.

The page is loaded from ``file://`` with every other request blocked and recorded.  Expected
numbers come from ``exercise --json`` (run_step, itself checked against the hand-written
backprop), read at the path each printed number names (``data-q``), never from the page's code.

In CI (``CI`` set) a missing browser or Playwright fails these tests; elsewhere they skip, as the
LaTeX tests do without pdflatex.  No browser is ever downloaded: only ``/usr/bin/chromium``
(or ``$CHROMIUM``) is used.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinygrad_mlp.cli.exercise import main
from tinygrad_mlp.practical.exercise import parse_spec, run_step
from tinygrad_mlp.practical.render import WorkedSolution

from test_exercise import random_specs
from test_render import close_at_precision

ROOT = Path(__file__).resolve().parents[1]
BUILTIN_NAMES = ["q1", "q1-batch", "q2", "q2-batch"]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def _missing(why: str):
    if os.environ.get("CI"):
        pytest.fail(f"{why}: required in CI (CI is set)")
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser():
    exe = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(exe).exists():
        _missing("chromium not installed (Debian: apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright not installed (pip install playwright; never `playwright install`)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=ARGS)
        yield b
        b.close()


class Loaded:
    """A page opened from disk with the network blocked; what it asked for and what it said."""

    def __init__(self, browser, path: Path, width: int = 1400):
        self.requests, self.console = [], []
        self.page = browser.new_page(viewport={"width": width, "height": 900})
        self.page.on("console", lambda m: self.console.append((m.type, m.text)))
        self.page.on("pageerror", lambda e: self.console.append(("pageerror", str(e))))
        url = path.resolve().as_uri()

        def route(r):
            self.requests.append(r.request.url)
            if r.request.url == url:
                r.continue_()
            else:
                r.abort()

        self.page.route("**/*", route)
        self.page.goto(url)
        self.url = url

    def close(self):
        self.page.close()


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def at(doc, path: str):
    v = doc
    for k in path.split("."):
        v = v[int(k)] if isinstance(v, list) else v[k]
    return v


def same(printed: str, value, digits: int) -> bool:
    printed = printed.strip().replace("−", "-")
    if isinstance(value, float) and math.isinf(value):
        return printed == ("inf" if value > 0 else "-inf")
    return close_at_precision(printed, float(value), digits)


def check_page(lp: Loaded, doc: dict, digits: int, notes_html: str):
    page = lp.page
    # 1. nothing leaves the page, nothing complains
    assert lp.requests == [lp.url], lp.requests
    assert not [c for c in lp.console if c[0] in ("error", "pageerror", "warning")], lp.console
    # 2. the MathML is laid out as mathematics: non-zero boxes, fractions stacked
    sizes = page.evaluate("""() => Array.from(document.querySelectorAll('#sheet math'))
        .filter(m => !m.closest('[hidden]')).map(m => {const r = m.getBoundingClientRect(); return [r.width, r.height];})""")
    assert sizes and all(w > 0 and h > 0 for w, h in sizes), sizes[:5]
    stacked = page.evaluate("""() => Array.from(document.querySelectorAll('#sheet mfrac')).slice(0, 5).map(f => {
        const a = f.children[0].getBoundingClientRect(), b = f.children[1].getBoundingClientRect();
        return a.bottom <= b.top + 1 && a.height > 0;})""")
    assert stacked and all(stacked)
    assert page.evaluate("getComputedStyle(document.querySelector('#sheet mtable')).display") in (
        "inline-table", "table", "block math", "inline math", "math")
    # 3. every number printed in the maths carries its --json path and equals that value
    pairs = page.evaluate("""() => Array.from(document.querySelectorAll('[data-q]'))
        .map(e => [e.dataset.q, e.textContent])""")
    assert len(pairs) > 20
    for q, text in pairs:
        assert same(text, at(doc, q), digits), (q, text, at(doc, q))
    unlabelled = page.evaluate("""() => Array.from(document.querySelectorAll('#sheet mn'))
        .filter(e => !e.dataset.q && !e.classList.contains('c')).map(e => e.textContent)""")
    assert unlabelled == []
    # the chain-rule notes, shown on demand, hold their numbers the same way
    spans = re.findall(r'<span class="n" data-q="([^"]+)">([^<]*)</span>', notes_html)
    assert spans
    for q, text in spans:
        assert same(text, at(doc, q), digits), (q, text)
    return len(pairs) + len(spans)


def notes_of(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    m = re.search(r'<script type="application/json" id="notes">(.*?)</script>', text, flags=re.S)
    return json.dumps(json.loads(m.group(1).replace("<\\/", "</")), ensure_ascii=False).replace('\\"', '"')


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_builtin_page_offline_numbers_keyboard_and_clicks(browser, capsys, tmp_path, name):
    target = tmp_path / f"{name}.html"
    code, out, err = cli(capsys, name, "--format", "html", "-o", target)
    assert code == 0 and out == ""
    text = target.read_text(encoding="utf-8")
    assert "<math" in text and "<svg" in text
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", text)  # no external resource at all
    _, js, _ = cli(capsys, name, "--json")
    doc = json.loads(js)
    lp = Loaded(browser, target)
    try:
        checked = check_page(lp, doc, 4, notes_of(target))
        assert checked > 100
        page = lp.page
        # keyboard stepping moves the current line and the diagram's highlight
        page.locator("body").focus()
        first = page.evaluate("document.querySelector('.step.current').textContent")
        seen = set()
        for _ in range(40):
            page.keyboard.press("ArrowRight")
            hl = page.evaluate("document.querySelector('.step.current').dataset.hl")
            lit = page.evaluate("Array.from(document.querySelectorAll('#net .hl')).map(e => e.id)")
            if hl:
                want = page.evaluate(f"Array.from(document.querySelectorAll('#net .{hl}')).map(e => e.id)")
                assert sorted(lit) == sorted(want) and lit, (hl, lit)
                seen.add(hl[0])
        assert {"U", "E"} <= seen
        assert page.evaluate("document.querySelector('.step.current').textContent") != first
        page.keyboard.press("ArrowLeft")
        # clicking a weight shows its chain-rule numbers: δ_i h_j and the update, as in --json
        page.click("#w-2-1-0")
        info = page.inner_text("#info")
        assert "δ" in info and "update" in info.lower() or "Sum" in info
        g = format(doc["grad_W"][1][1][0])
        shown = page.evaluate("""() => Array.from(document.querySelectorAll('#info [data-q]'))
            .map(e => [e.dataset.q, e.textContent])""")
        qs = dict(shown)
        assert "examples.0.dz.1.1" in qs and "examples.0.h.0.0" in qs, qs
        for q, t in shown:
            assert same(t, at(doc, q), 4), (q, t, g)
        # the keyboard alone reaches the diagram: Tab from the top lands on a weight, and its note shows
        page.evaluate("document.activeElement && document.activeElement.blur()")
        for _ in range(12):
            page.keyboard.press("Tab")
            if page.evaluate("!!document.activeElement.closest('#net')"):
                break
        focused = page.evaluate("document.activeElement.id")
        assert focused.startswith(("w-", "u-", "b-")), focused
        assert page.evaluate(f"document.getElementById('{focused}').classList.contains('sel')")
        # a unit and a bias, by keyboard alone: Tab to it, Enter
        page.focus("#b-1-0")
        page.keyboard.press("Enter")
        assert "b" in page.inner_text("#info") and page.evaluate("document.querySelector('#b-1-0.sel') !== null")
        page.focus("#u-1-0")
        info = page.inner_text("#info")
        assert "z" in info and "g′" in info and "Σ" in info  # δ = ∂L/∂h · g′(z), ∂L/∂h = Σ W δ, with numbers
        if len(doc["examples"]) > 1:
            page.click("button[data-view='0']")
            hidden = page.evaluate("""() => Array.from(document.querySelectorAll('#sheet [data-ex]'))
                .map(e => [e.dataset.ex, e.hidden])""")
            assert all(h == (ex != "0") for ex, h in hidden), hidden
            page.click("button[data-view='1']")
            page.click("#w-2-1-0")
            assert "examples.1.dz.1.1" in dict(page.evaluate("""() => Array.from(document.querySelectorAll(
                '#info [data-q]')).map(e => [e.dataset.q, e.textContent])"""))
            page.click("button[data-view='sum']")
            page.click("#w-2-1-0")
            assert "Σ" in page.inner_text("#info")
        # printing shows the whole sheet, without the controls
        page.emulate_media(media="print")
        assert page.evaluate("getComputedStyle(document.getElementById('controls')).display") == "none"
        assert page.evaluate("""Array.from(document.querySelectorAll('#sheet .step'))
            .every(s => s.getBoundingClientRect().height > 0)""")
        # the text can be selected and copied
        assert page.evaluate("getComputedStyle(document.querySelector('#sheet')).userSelect") != "none"
        if name in ("q1", "q2-batch"):
            # the picture for the README: the line ∂L/∂W^[2] = δ^[2] h^[1]ᵀ current, one of its weights chosen
            page.emulate_media(media="screen")
            page.keyboard.press("Home")
            k = page.evaluate("""Array.from(document.querySelectorAll('#sheet .step')).filter(s => !s.closest('[hidden]'))
                .findIndex(s => s.dataset.hl === 'E2' && s.textContent.includes('∂'))""")
            assert k > 0
            for _ in range(k):
                page.keyboard.press("ArrowRight")
            page.evaluate("document.querySelector('.step.current').scrollIntoView({block: 'center'})")
            page.click("#w-2-1-0")
            shot = tmp_path / f"page_{name}.png"
            page.screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000
            if os.environ.get("UPDATE_DOCS_SCREENSHOTS"):
                shutil.copy(shot, ROOT / "docs" / f"page_{name.replace('-', '_')}.png")
    finally:
        lp.close()


def test_q1_page_is_small_and_digits_apply(browser, capsys, tmp_path):
    target = tmp_path / "q1.html"
    assert cli(capsys, "q1", "--format", "html", "--digits", "6", "-o", target)[0] == 0
    assert target.stat().st_size <= 300_000
    doc = json.loads(cli(capsys, "q1", "--json")[1])
    lp = Loaded(browser, target)
    try:
        check_page(lp, doc, 6, notes_of(target))
        text = lp.page.inner_text("#sheet")
        assert "0.163961" in text  # the sheet's ŷ₁ = 0.16396, one digit further
    finally:
        lp.close()


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                HealthCheck.function_scoped_fixture])
@given(random_specs(), st.integers(2, 8))
def test_random_spec_pages_match_their_json(browser, tmp_path, raw, digits):
    r = run_step(parse_spec(raw))
    target = tmp_path / "random.html"
    target.write_text(WorkedSolution(r, digits).html(), encoding="utf-8")
    doc = json.loads(json.dumps(r.to_json()))
    lp = Loaded(browser, target, width=1000)
    try:
        check_page(lp, doc, digits, notes_of(target))
        lp.page.locator("body").focus()
        lp.page.keyboard.press("End")
        lp.page.keyboard.press("ArrowLeft")
        assert lp.page.evaluate("document.querySelectorAll('.step.current').length") == 1
    finally:
        lp.close()
