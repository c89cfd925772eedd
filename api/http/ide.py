"""The GraphiQL page, served from the package itself, so that it works on a closed network.

GraphiQL 3 and React 18 (their released UMD builds, see `static/graphiql/VERSIONS.md`) and the
page's own script and styles are served under content-hashed names with a year's cache
lifetime; the page's Content-Security-Policy lets it load nothing from anywhere but the service.
Development mode only: in production neither the page nor its assets are routed.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from importlib.resources import files
from pathlib import PurePosixPath
from string import Template

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

STATIC_PATH = "/static/graphiql"
"""Where the assets are served; their names carry their content hash."""

ASSETS: dict[str, str] = {  # template variable -> file in static/graphiql/
    "react_js": "react.production.min.js",
    "react_dom_js": "react-dom.production.min.js",
    "graphiql_js": "graphiql.min.js",
    "graphiql_css": "graphiql.min.css",
    "settle_js": "settle.js",
    "settle_css": "settle.css",
}

MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css"}

CACHE_FOREVER = "public, max-age=31536000, immutable"
"""An asset's URL changes with its content, so a browser may keep it for a year."""


def content_security_policy(nonce: str) -> str:
    """Nothing but the service: scripts, styles and GraphQL requests from 'self' only.

    GraphiQL's stylesheet embeds its fonts (Roboto, Fira Code) and a few images as data: URLs,
    hence `font-src data:` and `img-src data:` (the page's icon is an empty data: URL too). The
    one <style> element GraphiQL adds at run time (its dialogs' scroll lock) carries the
    per-response nonce, so styles need no 'unsafe-inline'; no script needs 'unsafe-eval'.
    """
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            f"style-src 'self' 'nonce-{nonce}'",
            "font-src data:",
            "img-src data:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


@dataclass(frozen=True, slots=True)
class Asset:
    """One file of the page, served under a name that carries its content hash."""

    name: str
    body: bytes
    media_type: str
    digest: str

    @classmethod
    def of(cls, name: str, body: bytes) -> Asset:
        return cls(name, body, MEDIA_TYPES[PurePosixPath(name).suffix], hashlib.sha256(body).hexdigest())

    @property
    def served_name(self) -> str:
        """`graphiql.min.js` -> `graphiql.min.<first 16 hex digits of its SHA-256>.js`."""
        path = PurePosixPath(self.name)
        return f"{path.stem}.{self.digest[:16]}{path.suffix}"

    @property
    def etag(self) -> str:
        return f'"{self.digest}"'


class GraphiQLPage:
    """The page (`response`, for a GET of the GraphQL endpoint asking for HTML) and the route of
    its assets (`routes`). Built once by the app factory; the files are read from the package.
    """

    def __init__(self, template: Template, assets: dict[str, Asset], endpoint: str = "/graphql") -> None:
        self.template = template
        self.assets = assets
        self.endpoint = endpoint
        self.served = {asset.served_name: asset for asset in assets.values()}

    @classmethod
    def load(cls, endpoint: str = "/graphql") -> GraphiQLPage:
        package = files("api.http")
        static = package.joinpath("static", "graphiql")
        assets = {variable: Asset.of(name, static.joinpath(name).read_bytes()) for variable, name in ASSETS.items()}
        return cls(Template(package.joinpath("graphiql.html").read_text(encoding="utf-8")), assets, endpoint)

    def response(self, request: Request) -> Response:
        """The page, with a fresh style nonce; never cached, so that it always names current assets."""
        nonce = secrets.token_urlsafe(18)
        html = self.template.substitute(
            {variable: f"{STATIC_PATH}/{asset.served_name}" for variable, asset in self.assets.items()},
            nonce=nonce,
            endpoint=self.endpoint,
        )
        return HTMLResponse(
            html,
            headers={
                "Content-Security-Policy": content_security_policy(nonce),
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
            },
        )

    async def asset(self, request: Request) -> Response:
        asset = self.served.get(request.path_params["name"])
        if asset is None:  # an unknown name, or an old hash after an upgrade
            return PlainTextResponse("Not Found", status_code=404)
        headers = {"Cache-Control": CACHE_FOREVER, "ETag": asset.etag, "X-Content-Type-Options": "nosniff"}
        if asset.etag in if_none_match(request):
            return Response(status_code=304, headers=headers)
        return Response(asset.body, media_type=asset.media_type, headers=headers)

    def routes(self) -> list[Route]:
        return [Route(STATIC_PATH + "/{name}", self.asset, methods=["GET"])]


def if_none_match(request: Request) -> set[str]:
    """The entity tags of an If-None-Match header, weak ones compared as strong (RFC 9110 13.1.2)."""
    tags = request.headers.get("if-none-match", "")
    return {tag.strip().removeprefix("W/") for tag in tags.split(",") if tag.strip()}
