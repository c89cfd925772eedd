"""GraphiQL in a real browser on a network that holds nothing but the service.

The real service (`settle serve`, development mode, SQLite, the demo data) runs in a subprocess;
Debian's headless Chromium, driven by Playwright, opens /graphql with every host name but
127.0.0.1 made unresolvable, sets a bearer token, runs a query and sees its result. A screenshot
is saved under SETTLE_TEST_ARTIFACTS (or the test's tmp_path) and its path printed.

Skipped, loudly (see the run's header), where /usr/bin/chromium or Playwright is missing;
failed instead with SETTLE_TEST_REQUIRE_BROWSER=1, as .ci/run sets.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, cast

import httpx
import pytest

from api.demo import DEMO_HOSPITAL, demo_document
from api.settings import PROJECT_ROOT
from tests.api.tokens import Tokens
from tests.conftest import BROWSER_PROBLEM, CHROMIUM, REQUIRE_BROWSER

if TYPE_CHECKING:
    from playwright.async_api import ConsoleMessage

CHROMIUM_ARGUMENTS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    # any request to a host other than the service fails to resolve, so nothing can leave the machine
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
STARTUP_SECONDS = 90
BROWSER_TIMEOUT_MS = 30_000

pytestmark = pytest.mark.skipif(
    BROWSER_PROBLEM is not None, reason=f"no browser for the GraphiQL test: {BROWSER_PROBLEM}"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def demo_service(tmp_path: Path, tokens: Tokens) -> Iterator[str]:
    """`settle serve` in development mode over a fresh SQLite file, which it migrates and fills
    with the demo data; it trusts the tests' token issuer. Yields its base URL.
    """
    port = free_port()
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("SETTLE_") and name != "DATABASE_URL"
    }
    environment.update(
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'graphiql.sqlite3'}",
        SETTLE_MODE="development",
        SETTLE_DEMO_DATA="1",
        SETTLE_HOST="127.0.0.1",
        SETTLE_PORT=str(port),
        SETTLE_KEYS_DIR=str(tokens.keys_dir),
        SETTLE_KEYRING_DIR=str(tokens.keyring_dir),
    )
    log_path = tmp_path / "service.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve"],
            env=environment,
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"settle serve exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"settle serve was not ready after {STARTUP_SECONDS} s:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def artifacts_dir(tmp_path: Path) -> Path:
    """Where the screenshot goes: SETTLE_TEST_ARTIFACTS when set (CI keeps it), else tmp_path."""
    named = os.environ.get("SETTLE_TEST_ARTIFACTS")
    folder = Path(named) if named else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def skip_or_fail(reason: str) -> NoReturn:
    """A browser that would not start: skipped, or failed where it is required (a missing one
    is skipped by the mark above, or refused at the session's start where it is required)."""
    if REQUIRE_BROWSER:
        pytest.fail(f"the browser is required (SETTLE_TEST_REQUIRE_BROWSER=1): {reason}")
    pytest.skip(f"no browser for the GraphiQL test: {reason}")


def note_error(message: ConsoleMessage, errors: list[str]) -> None:
    """A console error: an uncaught failure, a failed load, or a refusal by the page's CSP."""
    if message.type == "error":
        errors.append(message.text)


def demo_institution(code: str) -> dict[str, Any]:
    institutions = cast(list[dict[str, Any]], demo_document()["institutions"])
    return next(institution for institution in institutions if institution["code"] == code)


async def test_graphiql_runs_a_query_with_a_bearer_token_and_loads_nothing_from_outside_the_service(
    demo_service: str, tokens: Tokens, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from playwright.async_api import Error, Request, async_playwright, expect

    expect.set_options(timeout=BROWSER_TIMEOUT_MS)
    hospital = demo_institution(DEMO_HOSPITAL)
    token = tokens.mint("hospital", DEMO_HOSPITAL)
    query = f'{{\n  institution(code: "{DEMO_HOSPITAL}") {{\n    code\n    name\n    level\n  }}\n}}\n'
    requests: list[Request] = []
    failed: list[str] = []
    console_errors: list[str] = []
    screenshot = artifacts_dir(tmp_path) / "graphiql.png"

    async with async_playwright() as driver:
        try:
            browser = await driver.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"),  # a fresh profile: no cache, no stored tabs
                executable_path=str(CHROMIUM),
                headless=True,
                args=CHROMIUM_ARGUMENTS,
                viewport={"width": 1400, "height": 860},
                locale="en-GB",
                timezone_id="Asia/Shanghai",
            )
        except Error as error:
            skip_or_fail(f"{CHROMIUM} did not start: {error}")
        browser.on("request", lambda request: requests.append(request))
        browser.on("requestfailed", lambda request: failed.append(f"{request.url}: {request.failure}"))
        page = browser.pages[0] if browser.pages else await browser.new_page()
        page.set_default_timeout(BROWSER_TIMEOUT_MS)
        page.on("console", lambda message: note_error(message, console_errors))
        page.on("pageerror", lambda error: console_errors.append(f"uncaught: {error}"))
        try:
            opened = await page.goto(f"{demo_service}/graphql")
            assert opened is not None and opened.status == 200
            await expect(page.locator(".graphiql-container")).to_be_visible()
            await expect(page.locator("#token-status")).to_contain_text("No token")

            # a dialog's run-time <style> is admitted by the page's nonce (a refusal is a console error)
            await page.click('[aria-label="Open settings dialog"]')
            await expect(page.get_by_role("dialog")).to_contain_text("Theme")
            await page.keyboard.press("Escape")
            await expect(page.get_by_role("dialog")).to_have_count(0)

            await page.fill("#token", token)
            await page.press("#token", "Enter")
            await expect(page.locator("#token-status")).to_contain_text(f"hospital {DEMO_HOSPITAL}")

            # with the token the schema loads: the documentation explorer lists the root types
            await page.click('[aria-label="Show Documentation Explorer"]')
            await expect(page.locator(".graphiql-doc-explorer")).to_contain_text("Query")

            await page.click(".graphiql-query-editor .CodeMirror")
            await page.keyboard.press("Control+A")
            await page.keyboard.press("Delete")
            await page.keyboard.insert_text(query)
            await page.click(".graphiql-execute-button")

            result = page.locator(".graphiql-response")
            await expect(result).to_contain_text(hospital["name"])
            shown = await result.inner_text()
        finally:
            await page.screenshot(path=str(screenshot))  # of the page as it was, failed or not
            await browser.close()

    with capsys.disabled():
        print(f"\nGraphiQL screenshot: {screenshot}")

    shown = shown.replace("\xa0", " ")  # CodeMirror renders indentation as no-break spaces
    shown_json = json.loads(shown[shown.index("{") : shown.rindex("}") + 1])
    assert shown_json == {"data": {"institution": {"code": DEMO_HOSPITAL, "name": hospital["name"], "level": 3}}}
    outside = [r.url for r in requests if not r.url.startswith(f"{demo_service}/") and not r.url.startswith("data:")]
    assert outside == [], "the page asked for something beyond the service"
    assert failed == []
    assert console_errors == []
    calls = [r for r in requests if r.method == "POST" and r.url == f"{demo_service}/graphql"]
    assert len(calls) >= 2  # the schema's introspection, then the query
    assert {r.headers.get("authorization") for r in calls} == {f"Bearer {token}"}
    assert [r.url for r in requests if r.url.startswith(f"{demo_service}/static/graphiql/")] != []
