"""The GraphiQL page over HTTP: everything it loads comes from the service itself, under a
strict Content-Security-Policy, in development only; the vendored files are GraphiQL's and
React's released files, unchanged. (In a real browser: test_graphiql_browser.py.)
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from api.app import create_app
from api.http.ide import STATIC_PATH
from api.settings import PROJECT_ROOT, Mode
from tests.api.conftest import running, settings_for
from tests.api.tokens import Tokens
from tests.conftest import Databases

CDN = re.compile(r"https?://(unpkg\.com|cdn\.jsdelivr\.net|cdnjs\.cloudflare\.com|fonts\.googleapis\.com)")
STATIC = PROJECT_ROOT / "api" / "http" / "static" / "graphiql"
HTML = {"accept": "text/html"}


def linked(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]*)"', page)


async def test_the_graphiql_page_loads_only_from_the_service_under_a_strict_content_security_policy(
    databases: Databases, tokens: Tokens
) -> None:
    app = create_app(settings_for(await databases.fresh("sqlite"), tokens))
    async with running(app) as client:
        page = await client.get("/graphql", headers=HTML)
        again = await client.get("/graphql", headers=HTML)

    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = dict(directive.split(" ", 1) for directive in page.headers["content-security-policy"].split("; "))
    nonce = re.search(r'nonce="([^"]+)"', page.text)
    assert nonce is not None
    assert policy == {
        "default-src": "'none'",
        "script-src": "'self'",
        "style-src": f"'self' 'nonce-{nonce.group(1)}'",
        "font-src": "data:",
        "img-src": "data:",
        "connect-src": "'self'",
        "base-uri": "'none'",
        "form-action": "'none'",
        "frame-ancestors": "'none'",
    }
    assert nonce.group(1) not in again.text  # a fresh nonce for every response
    assert page.headers["cache-control"] == "no-store"
    assert all(url.startswith(f"{STATIC_PATH}/") or url == "data:," for url in linked(page.text)), linked(page.text)
    assert "settle token --role hospital" in page.text  # where to get a token


async def test_graphiql_assets_are_served_with_a_content_type_a_year_of_cache_and_an_etag(
    databases: Databases, tokens: Tokens
) -> None:
    app = create_app(settings_for(await databases.fresh("sqlite"), tokens))
    async with running(app) as client:
        page = await client.get("/graphql", headers=HTML)
        urls = [url for url in linked(page.text) if url.startswith(STATIC_PATH)]
        assets = [await client.get(url) for url in urls]
        etag = assets[0].headers["etag"]
        revalidated = await client.get(urls[0], headers={"if-none-match": f"W/{etag}"})
        stale = await client.get(f"{STATIC_PATH}/graphiql.min.0000000000000000.js")
        unlisted = await client.get(f"{STATIC_PATH}/VERSIONS.md")

    assert len(urls) == 6
    for url, asset in zip(urls, assets, strict=True):
        assert asset.status_code == 200, url
        expected_type = "text/javascript" if url.endswith(".js") else "text/css"
        assert asset.headers["content-type"] == f"{expected_type}; charset=utf-8"
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert asset.headers["etag"] == f'"{hashlib.sha256(asset.content).hexdigest()}"'
        assert hashlib.sha256(asset.content).hexdigest()[:16] in url  # the name changes with the content
        assert CDN.search(asset.text) is None
    assert revalidated.status_code == 304 and revalidated.content == b""
    assert stale.status_code == 404 and unlisted.status_code == 404


async def test_production_serves_neither_the_graphiql_page_nor_its_assets(databases: Databases, tokens: Tokens) -> None:
    development = create_app(settings_for(await databases.fresh("sqlite"), tokens))
    async with running(development) as client:
        urls = [url for url in linked((await client.get("/graphql", headers=HTML)).text) if url.startswith(STATIC_PATH)]
    production = create_app(settings_for(await databases.fresh("sqlite"), tokens, Mode.PRODUCTION))
    async with running(production) as client:
        page = await client.get("/graphql", headers=HTML)
        assets = [await client.get(url) for url in urls]

    assert page.status_code == 401  # no page: a GET of /graphql is an API call, and needs a token
    assert [asset.status_code for asset in assets] == [404] * len(urls)


def test_no_python_html_or_javascript_file_of_the_service_names_a_cdn() -> None:
    checked = [path for pattern in ("*.py", "*.html", "*.js") for path in (PROJECT_ROOT / "api").rglob(pattern)]
    assert STATIC / "graphiql.min.js" in checked
    assert [str(path) for path in checked if CDN.search(path.read_text(encoding="utf-8"))] == []


def test_the_vendored_graphiql_files_are_the_released_files_that_versions_md_lists() -> None:
    notes = (STATIC / "VERSIONS.md").read_text(encoding="utf-8")
    listed = dict(re.findall(r"^\| `([^`]+)` \| [^|]+ \| `([0-9a-f]{64})` \|$", notes, flags=re.MULTILINE))
    ours = {"settle.js", "settle.css", "VERSIONS.md", "LICENSE.fonts"}

    assert set(listed) == {
        "graphiql.min.js",
        "graphiql.min.css",
        "react.production.min.js",
        "react-dom.production.min.js",
        "LICENSE.graphiql",
        "LICENSE.react",
        "LICENSE.react-dom",
    }
    assert {path.name for path in STATIC.iterdir()} == set(listed) | ours
    assert {name: sha256(STATIC / name) for name in listed} == listed


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
