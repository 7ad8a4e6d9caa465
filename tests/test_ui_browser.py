"""The web view in a real browser: headless Chromium (the system's, driven by Playwright)
against ``datakeep ui`` started as a command on a keep built here. Clicks from the content
list into a tree, a file's preview and its download; from projects into a master job and
a record; and sees a damaged blob give an error page.

``DATAKEEP_UI_SCREENSHOTS=docs`` saves screenshots of the main pages there on the way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import datakeep

from .conftest import blob_path, damage
from .test_ui_site import SCRIPT, build_keep

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = os.environ.get("DATAKEEP_UI_SCREENSHOTS")


def _require_browser() -> None:
    missing = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "playwright is not installed"
    if missing is None and not os.path.exists(CHROMIUM):
        missing = f"no Chromium at {CHROMIUM} (make test installs it)"
    if missing is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser test must run in CI: {missing}")
        pytest.skip(missing)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """``datakeep ui`` on a free port of a keep built here: (its URL, what it holds)."""
    _require_browser()
    made = build_keep(tmp_path, None)
    made["root"] = tmp_path
    # datakeep.cli.ui imported by name: it registers the command on the group
    code = "import datakeep.cli.ui; from datakeep.cli import main; main()"
    server = subprocess.Popen(
        [sys.executable, "-c", code, "ui", "--port", "0"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert " read-only at http://127.0.0.1:" in line, line + (server.stderr or "")
        yield line.split(" at ")[1].split()[0], made
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_clicking_through_content_runs_and_a_damaged_blob(
    served: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, made = served
    shots = Path(SHOTS) if SHOTS else None

    def shot(page: Any, name: str) -> None:
        if shots is not None:
            page.screenshot(path=str(shots / f"ui-{name}.png"), full_page=False)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(
            accept_downloads=True, viewport={"width": 1280, "height": 800}
        )
        page = context.new_page()
        page.set_default_timeout(15_000)

        # content list -> tree -> directory -> file preview -> download
        page.goto(url + "content?tag=stage")
        expect(page.locator("h1")).to_have_text("Content")
        expect(page.locator("table.list")).to_contain_text("stage=raw")
        expect(page.locator("table.list")).to_contain_text(SCRIPT)  # shown as text
        shot(page, "content")
        page.click("table.list tbody tr >> text=tree")
        expect(page.locator("table.list")).to_contain_text("readme.txt")
        page.click("a.dir >> text=sub/")
        expect(page.locator("table.list")).to_contain_text("deep.txt")
        page.go_back()
        shot(page, "tree")
        page.click("a.file >> text=readme.txt")
        expect(page.locator("pre.file")).to_have_text(f"hello from the keep\n{SCRIPT}\n")
        assert page.locator("script").count() == 0  # the file's <script> stays text
        shot(page, "preview")
        with page.expect_download() as download:
            page.click("#download")
        saved = tmp_path / "downloaded.txt"
        download.value.save_as(saved)
        assert saved.read_text() == f"hello from the keep\n{SCRIPT}\n"
        page.go_back()
        page.click("a.file >> text=table.csv")
        expect(page.locator("table.data")).to_contain_text("Oslo")

        # projects -> master job -> record
        page.click("nav >> text=Runs")
        page.click("text=qa")
        expect(page.locator("table.list svg")).to_have_count(1)  # the status bar
        page.click("text=first run")
        expect(page.locator("h1")).to_contain_text("first run")
        expect(page.locator("img.chart")).to_be_visible()
        # the chart, an SVG drawn by the server, loads as an image (polled from here: the
        # pages' policy forbids the string evaluation wait_for_function would use)
        chart = page.locator("img.chart")
        deadline = time.monotonic() + 15
        while chart.evaluate("img => img.naturalWidth") == 0:
            assert time.monotonic() < deadline, "the chart did not load"
            time.sleep(0.05)
        shot(page, "master-job")
        page.select_option("select[name=status]", "failed")
        page.click("form.filters button")
        expect(page.locator("#records")).to_contain_text("r117")
        page.click("#records >> text=r001")
        expect(page.locator("#payload")).to_contain_text('"answer": 42')
        expect(page.locator("#payload")).to_contain_text(SCRIPT)
        shot(page, "record")

        if shots is not None:  # the other main pages, for the docs
            for name, path in (
                ("workspace", "workspaces/lab"),
                ("lineage", "workspaces/lab/lineage/results"),
                ("diff", "workspaces/lab/diff?a=v1&b=v2"),
                ("health", "health"),
            ):
                page.goto(url + path)
                shot(page, name)

        # a damaged blob: an error page, never its bytes
        page.goto(url + "content?tag=kind=loose")
        page.click("a.digest")
        expect(page.locator("pre.file")).to_contain_text("a blob of its own")
        with datakeep.open(made["root"]) as keep:
            damage(blob_path(keep, made["blob"]), b"A BLOB OF ITS OWN\n" * 4000)
        page.reload()
        expect(page.locator(".error-page")).to_contain_text("damaged content")
        response = page.goto(url + "raw/" + made["blob"])
        assert response is not None and response.status == 500
        expect(page.locator(".error-page")).to_contain_text("nothing of it was sent")
        assert "A BLOB OF ITS OWN" not in page.content()
        shot(page, "damaged")
        browser.close()
