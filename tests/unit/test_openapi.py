"""The OpenAPI document (app/web/openapi.yaml) against the routes the real application
registers (app/bootstrap.py build_app): every route is described, every description is a
route, and the document is valid OpenAPI."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate

from app.bootstrap import build_app
from app.config import Settings
from app.web import openapi

METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


def routes_of(app: web.Application) -> set[tuple[str, str]]:
    """(method, path) of every route, paths written as OpenAPI writes them. HEAD is left out:
    aiohttp adds it beside every GET by itself, and it answers as the GET does."""
    out = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        if "prefix" in info:  # a static directory: one file per name under it
            path = f"{info['prefix'].rstrip('/')}/{{filename}}"
        else:
            path = info.get("formatter") or info["path"]
        out.add((route.method.lower(), path))
    return out


def operations_of(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method, path) for path, item in document["paths"].items() for method in item if method in METHODS
    }


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi.load_document()


def test_every_route_is_described_and_every_description_is_a_route(document: dict[str, Any]) -> None:
    routes = routes_of(build_app(Settings()))
    described = operations_of(document)
    assert sorted(routes - described) == [], "routes missing from app/web/openapi.yaml"
    assert sorted(described - routes) == [], "described in app/web/openapi.yaml but not routes"
    assert len(routes) > 100  # the whole application, not a part of it


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)  # raises, naming the place, if not


def test_path_parameters_are_declared_as_the_route_names_them(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        names = set(re.findall(r"{(\w+)}", path))
        for method in METHODS & set(item):
            params = [*item.get("parameters", []), *item[method].get("parameters", [])]
            declared = {resolve(document, p)["name"] for p in params if resolve(document, p)["in"] == "path"}
            assert declared == names, f"{method.upper()} {path}"


def test_every_operation_says_what_a_client_gets_when_refused(document: dict[str, Any]) -> None:
    """An operation behind the token or a session lists 401 (or, for a page, the redirect to
    sign in); one that reads a body lists 400."""
    for path, item in document["paths"].items():
        for method in METHODS & set(item):
            op = item[method]
            codes = set(op["responses"])
            if op.get("security", document["security"]) != []:
                assert codes & {"401", "303"}, f"{method.upper()} {path}: no 401"
            if "requestBody" in op:
                assert "400" in codes, f"{method.upper()} {path}: no 400"


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


async def test_the_app_serves_it_as_json_without_a_token(document: dict[str, Any]) -> None:
    app = web.Application()
    openapi.add_routes(app)
    async with TestClient(TestServer(app)) as client:
        resp = await client.get(openapi.PATH)
        assert resp.status == 200
        assert resp.content_type == "application/json"
        assert await resp.json() == document
