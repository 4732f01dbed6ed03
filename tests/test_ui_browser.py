"""End to end: `promptopt ui` served for real, driven in headless Debian Chromium, models on the stub.

Needs `apt-get install chromium` and the `ui` and `dev` extras (Playwright drives the system
browser; no browser is ever downloaded). The screenshot of the results page is kept in
test-artifacts/ (or $PROMPTOPT_ARTIFACTS).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("PROMPTOPT_ARTIFACTS") or ROOT / "test-artifacts")
CHROMIUM = os.environ.get("PROMPTOPT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
REBOUND = "rebound.example"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as reply:
            return bool(reply.read().decode().strip() == "ok")
    except OSError:
        return False


@pytest.fixture
def ui_url(stub: Any, tmp_path: Path) -> Iterator[str]:
    require(importlib.util.find_spec("streamlit") is not None, "streamlit is not installed: pip install -e '.[ui]'")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "ui.log"
    (tmp_path / "home").mkdir()
    env = {
        **os.environ,
        "HOME": str(tmp_path / "home"),  # '~' in the page must not reach it; no user Streamlit config
        "PROMPTOPT_MODEL": "openai/stub",
        "PROMPTOPT_API_BASE": stub.url,
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, "-m", "promptopt", "ui", "--port", str(port), "--workspace", str(tmp_path / "ws")]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
        try:
            deadline = time.monotonic() + 60
            while not healthy(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"promptopt ui did not come up:\n{log_path.read_text()}")
                time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def browser() -> Iterator[Any]:
    require(importlib.util.find_spec("playwright") is not None, "playwright is not installed: pip install -e '.[dev]'")
    require(Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM}: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # The flags, stated even where Playwright adds them too (it also makes a fresh
        # profile); the rest keeps Chromium off this machine's closed network.
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-quic",
                "--disable-dev-shm-usage",
                "--no-first-run",
                # DNS rebinding, simulated: a foreign name that resolves to this machine.
                f"--host-resolver-rules=MAP {REBOUND} 127.0.0.1",
            ],
        )
        yield browser
        browser.close()


def settled(page: Any) -> None:
    """Wait until Streamlit finished the rerun a click or edit started."""
    from playwright.sync_api import expect

    page.wait_for_timeout(250)
    app = page.get_by_test_id("stApp")
    expect(app).to_have_attribute("data-test-connection-state", "CONNECTED")
    expect(app).not_to_have_attribute("data-test-script-state", re.compile(r"^(running|rerunRequested)$"))
    expect(page.get_by_test_id("stSkeleton")).to_have_count(0)


def goto(page: Any, name: str) -> None:
    from playwright.sync_api import expect

    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_test_id("stRadioOption").filter(has_text=name).click()
    expect(sidebar.get_by_role("radio", name=name)).to_be_checked()
    settled(page)


def test_load_a_template_run_two_rounds_and_see_the_results(browser: Any, ui_url: str, stub: Any) -> None:
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        page.goto(ui_url)
        settled(page)
        goto(page, "Template")
        page.get_by_role("combobox", name="Bundled template").click()
        page.get_by_role("listbox", name="Bundled template").get_by_role("option", name="Navigate", exact=True).click()
        settled(page)
        page.get_by_role("button", name="Load", exact=True).click()
        expect(page.get_by_role("heading", name="Navigate")).to_be_visible()

        goto(page, "Run")
        rounds = page.get_by_role("spinbutton", name="Rounds")
        rounds.fill("2")
        rounds.press("Enter")
        settled(page)
        expect(rounds).to_have_value("2")
        page.get_by_role("button", name="Start").click()
        expect(page.get_by_text("Run completed")).to_be_visible(timeout=90_000)
        assert stub.count() > 0

        # A second browser session sees none of this one's state.
        other = browser.new_context().new_page()
        other.goto(ui_url)
        settled(other)
        goto(other, "Run")
        expect(other.get_by_text("Load a template first")).to_be_visible()
        other.context.close()

        goto(page, "Results")
        expect(page.get_by_text("2 rounds, best round")).to_be_visible()
        expect(page.get_by_test_id("stDataFrame").first).to_be_visible()
        expect(page.get_by_test_id("stVegaLiteChart").first).to_be_visible()
        expect(page.get_by_text("Best prompt", exact=True)).to_be_visible()
        expect(page.get_by_text("judge: orders agree in")).to_be_visible()  # the judge's diagnostics
        page.screenshot(path=str(ARTIFACTS / "ui-results.png"), full_page=True)
        assert (ARTIFACTS / "ui-results.png").stat().st_size > 10_000

        # A reload keeps the session (its token is in the address): the run is still there.
        assert "session=" in page.url
        page.reload()
        settled(page)
        goto(page, "Run")
        expect(page.get_by_text("Run completed")).to_be_visible()
    except BaseException:
        page.screenshot(path=str(ARTIFACTS / "ui-failure.png"), full_page=True)
        raise
    finally:
        context.close()


def test_save_outside_the_workspace_is_refused_in_the_page(browser: Any, ui_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        page.goto(ui_url)
        settled(page)
        goto(page, "Template")
        page.get_by_role("button", name="Load", exact=True).click()
        settled(page)
        page.get_by_text("Save on the server").click()
        before = sorted(tmp_path.rglob("*"))
        for target in ("~/../outside.yaml", str(tmp_path / "outside.yaml"), "../outside.yaml"):
            box = page.get_by_role("textbox", name="File name in the workspace")
            box.fill(target)
            box.press("Enter")
            settled(page)
            overwrite = page.get_by_role("checkbox", name="Overwrite if it exists")
            if not overwrite.is_checked():
                # Streamlit draws its own box over a hidden input: click the visible label
                page.get_by_test_id("stCheckbox").filter(has_text="Overwrite if it exists").click()
                settled(page)
            expect(overwrite).to_be_checked()
            page.get_by_role("button", name="Save", exact=True).click()
            settled(page)
            expect(page.get_by_test_id("stAlertContentError").filter(has_text="outside.yaml")).to_be_visible()
            assert sorted(tmp_path.rglob("*")) == before, target
        assert not (tmp_path / "outside.yaml").exists()
    except BaseException:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "ui-save-failure.png"), full_page=True)
        raise
    finally:
        context.close()


def test_a_rebound_name_gets_403_and_no_app(browser: Any, ui_url: str) -> None:
    """A page on another site whose name now resolves to 127.0.0.1 (DNS rebinding) reaches the
    server with its own name in Host: it gets 403, and no Streamlit session starts."""
    page = browser.new_page()
    try:
        port = ui_url.rsplit(":", 1)[1]
        response = page.goto(f"http://{REBOUND}:{port}/")
        assert response is not None and response.status == 403
        assert "--allow-host" in page.content()
        assert page.get_by_test_id("stApp").count() == 0
        assert page.goto(f"http://localhost:{port}/") is not None  # the same server, by its own name
        page.get_by_test_id("stApp").wait_for()
    finally:
        page.close()
