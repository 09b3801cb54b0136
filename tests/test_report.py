"""`dedup report`: the HTML page of an index, checked as text and in a real browser (headless Chromium).

The index holds the committed sample in three batches and tests/hostile/documents.jsonl: documents whose ids,
titles, sources, urls and texts carry markup, scripts, `javascript:` URLs, quotes and control characters, and
rows the reader rejects, read from a file whose name is markup too."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import dedup
from tests.conftest import ARTICLES, ROOT

HOSTILE = ROOT / "tests" / "hostile" / "documents.jsonl"
PAYLOAD = "window.__pwned=1"  # what every hostile script would run
TITLE = "<script>window.__pwned=1</script> Dollar \"falls\" & 'slides'"
SOURCE = "<b onmouseover=\"window.__pwned=1\">evil.example</b>"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("report")
    idx, hostile = root / "idx", root / "hostile"
    hostile.mkdir()
    shutil.copy(HOSTILE, hostile / "<img src=x onerror=window.__pwned=1>.jsonl")
    for batch in ([ARTICLES / "news_sample.jsonl"], [ARTICLES / "news_copies.jsonl", ARTICLES / "seeds"], [hostile]):
        dedup.ingest(batch, idx)
    out = root / "report.html"
    run = subprocess.run([sys.executable, "-m", "dedup.cli", "report", "--index", str(idx), "--output", str(out)],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert run.returncode == 0, run.stderr
    return idx, out


def test_page_is_self_contained_and_counts_match(report: tuple[Path, Path]) -> None:
    idx, out = report
    page = out.read_text(encoding="utf-8")
    ix = dedup.Index(idx)
    one = lambda q: ix.sql(q).to_pylist()[0]["n"]  # noqa: E731
    head = page[page.index('<section id="headline"'):page.index("</section>")]
    numbers = [int(n.replace(",", "")) for n in re.findall(r"<b>([\d,]+)</b>", head)]
    assert numbers[0] == one("SELECT count(*) AS n FROM documents") == 330
    assert numbers[2] == one("SELECT count(*) AS n FROM cluster_summary")
    assert numbers[7] == one("SELECT count(*) AS n FROM rejected") == 3
    assert numbers[8] == 3  # batches
    # nothing is fetched: no external script, style, image or frame, and a policy that forbids any
    assert not re.search(r"""src=["']?(https?:)?//""", page)
    assert "default-src 'none'" in page and "<link" not in page
    assert "plotly.js v" in page  # the library itself is in the file
    # the largest story (the hostile copies and the BBC original) is shown beside its first document
    assert "Side by side" in page and "Dollar drops on reserves concerns" in page


def test_hostile_text_is_escaped_everywhere(report: tuple[Path, Path]) -> None:
    page = report[1].read_text(encoding="utf-8")
    start = page.index("/**\n* plotly.js v")  # plotly.js itself holds strings such as 'href="data:'
    page = page[:start] + page[page.index("</script>", start):]
    for raw in ["<script>window.__pwned", 'onerror="window', "<svg onload", "<iframe", "<style>body",
                'href="javascript:', 'href="data:', "<b onmouseover", "<a href=\"javascript", "\x1b", "\u202e"]:
        assert raw not in page, raw
    for shown in ["&lt;script&gt;window.__pwned=1&lt;/script&gt; Dollar &#34;falls&#34; &amp; &#39;slides&#39;",
                  "&lt;img src=x onerror=&#34;window.__pwned=1&#34;&gt;", "javascript:window.__pwned=1",
                  "&lt;style&gt;body{display:none}&lt;/style&gt;Dollar drops", "\\u202eoverride",
                  "&lt;/script&gt;&lt;script&gt;window.__pwned=1&lt;/script&gt;", " [31mreport\\u202e."]:  # the reader made the ESC a space
        assert shown in page, shown


def _browser(profile: Path) -> object:
    """A headless Chromium driven by the system chromedriver, its profile in `profile` (the test's own temporary
    directory, so runs leave nothing behind); skipped where there is none, except in CI."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        webdriver = None
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if webdriver is None or not chromium or not driver:
        why = "selenium, chromium and chromedriver are needed (.ci/run installs them)"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,1800",
                 f"--user-data-dir={profile}"]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=opts)


def test_report_in_headless_chromium(report: tuple[Path, Path], tmp_path: Path) -> None:
    browser = _browser(tmp_path / "chromium")
    try:
        browser.get(report[1].as_uri())
        deadline = time.monotonic() + 60
        while browser.execute_script("return document.body.getAttribute('data-charts')") != "drawn":
            assert time.monotonic() < deadline, "the charts were not drawn within 60 s"
            time.sleep(0.2)
        errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
        assert errors == []
        marks = browser.execute_script("""
            var out = {};
            ["chart-sizes", "chart-scores", "chart-sources", "chart-events"].forEach(function (id) {
              var el = document.getElementById(id);
              out[id] = {svg: el.querySelectorAll("svg.main-svg").length,
                         bars: el.querySelectorAll(".bars .point path").length,
                         heat: Array.from(el.querySelectorAll(".hm image")).filter(function (i) {
                                 return (i.getAttribute("href") || "").length > 100; }).length,
                         ticks: Array.from(el.querySelectorAll(".xtick text, .ytick text")).map(function (t) {
                                 return t.textContent; })};
            });
            return out;""")
        for chart in ("chart-sizes", "chart-scores", "chart-events"):
            assert marks[chart]["svg"] and marks[chart]["bars"] > 0, (chart, marks[chart])
        assert marks["chart-sources"]["svg"] and marks["chart-sources"]["heat"] == 1
        assert SOURCE in marks["chart-sources"]["ticks"]  # plotly draws the markup as text, too
        # no script of theirs ran, no element of theirs exists, their text is there as text
        assert browser.execute_script("return typeof window.__pwned") == "undefined"
        theirs = browser.execute_script("""return Array.from(document.querySelectorAll("*")).filter(function (e) {
              return Array.from(e.attributes).some(function (a) { return /^on/i.test(a.name); }) ||
                     (/^(javascript|data):/i.test(e.getAttribute("href") || "") && !e.closest(".plot")) ||
                     ["IFRAME", "IMG", "U", "STYLE"].indexOf(e.tagName) >= 0 && !e.closest(".plot, head");
            }).map(function (e) { return e.outerHTML.slice(0, 80); })""")
        assert theirs == []
        assert browser.execute_script("return document.querySelectorAll('script').length") == 3
        text = browser.execute_script("return document.body.innerText")
        assert TITLE in text and SOURCE in text and "<img src=x onerror=\"window.__pwned=1\">" in text
        browser.save_screenshot(str(tmp_path / "report.png"))
        assert (tmp_path / "report.png").stat().st_size > 10_000
    finally:
        browser.quit()


def test_story_events_per_batch_or_per_week(report: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from dedup import report as module

    ix = dedup.Index(report[0])
    total = ix.sql("SELECT count(*) AS n FROM cluster_events").to_pylist()[0]["n"]
    per_batch = module._charts(ix)["events"]
    # the copies (batch 2) make the stories; the hostile documents of batch 3 join one, which is no event
    assert {r["label"].split()[0] for r in per_batch} == {"#2"} and sum(r["n"] for r in per_batch) == total
    monkeypatch.setattr(module, "MAX_BARS", 2)  # three batches are then too many to draw one by one
    weekly = module._charts(ix)["events"]
    assert all(r["label"].startswith("week of ") for r in weekly) and sum(r["n"] for r in weekly) == total
