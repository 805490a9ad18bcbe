"""GET /v1/openapi.json: a valid OpenAPI 3.1 document that names every public route and matches real answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from jsonschema.exceptions import ValidationError
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import OpenAPIV31SpecValidator

from actors.inputs.outdir import SUCCESS
from actors.master.app import build_master
from actors.master.openapi import DOCUMENT, ERROR_STATUSES

from .conftest import Cluster, ClusterFactory, actor_settings

# The status page (its HTML at / and its files under /static) is not part of the JSON API this document describes.
STATUS_PAGE = frozenset({("GET", "/")})
STATIC_FILES = "/static"
API_TOKEN = "api-secret"


def public_routes(data_root: Path) -> set[tuple[str, str]]:
    """(method, pattern) of every route the master registers outside /internal/; HEAD is aiohttp's twin of GET."""
    app = build_master(actor_settings("master", 0, data_root))
    routes = set()
    for route in app.router.routes():
        pattern = route.resource.canonical if route.resource is not None else ""
        if pattern.startswith("/internal/") or route.method == "HEAD":
            continue
        routes.add((route.method, pattern))
    return routes


def documented() -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in DOCUMENT["paths"].items()
            for method in item if method != "parameters"}


def test_the_document_is_valid_openapi_3_1() -> None:
    OpenAPIV31SpecValidator(DOCUMENT).validate()
    assert DOCUMENT["openapi"].startswith("3.1.")


def test_every_public_route_is_described_and_nothing_else(data_root: Path) -> None:
    routes = public_routes(data_root)
    assert ("GET", "/v1/openapi.json") in routes and ("POST", "/v1/jobs") in routes
    page = {(method, path) for method, path in routes if (method, path) in STATUS_PAGE or
            (method == "GET" and (path == STATIC_FILES or path.startswith(STATIC_FILES + "/")))}
    missing = routes - documented() - page
    assert not missing, f"public routes missing from the OpenAPI document: {sorted(missing)}"
    invented = documented() - routes
    assert not invented, f"documented routes the master does not serve: {sorted(invented)}"
    assert not {path for _, path in documented() if path.startswith("/internal/")}


def test_errors_are_described_with_their_json_shape() -> None:
    submit = DOCUMENT["paths"]["/v1/jobs"]["post"]["responses"]
    for status in (400, 401, 403, 408, 409, 413, 421, 422, 429, 503, 507):
        assert submit[str(status)] == {"$ref": f"#/components/responses/Error{status}"}
    for status in ERROR_STATUSES:
        response = DOCUMENT["components"]["responses"][f"Error{status}"]
        assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert "Retry-After" in DOCUMENT["components"]["responses"]["Error429"]["headers"]
    assert DOCUMENT["components"]["schemas"]["Error"]["required"] == ["error", "message"]


def test_every_operation_lists_the_host_and_cross_site_refusals() -> None:
    """net/origin.py answers 403 and 421 on every public route, whatever its handler does."""
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                for status in (403, 421):
                    assert str(status) in operation["responses"], (method, path, status)


def check_answer(path: str, method: str, status: int, body: Any) -> None:
    """The document lists this status for this route, and the body fits the schema it gives."""
    responses = DOCUMENT["paths"][path][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {path} answered {status}, which the document does not list"
    response = responses[str(status)]
    if "$ref" in response:
        response = DOCUMENT["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    schema = {**response["content"]["application/json"]["schema"], "components": DOCUMENT["components"]}
    OAS31Validator(schema).validate(body)


async def answer(cluster: Cluster, method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
    headers = kwargs.pop("headers", {"Authorization": f"Bearer {API_TOKEN}"})
    async with cluster.session.request(method, cluster.url + url, headers=headers, **kwargs) as response:
        return response.status, await response.json()


async def test_real_answers_match_the_document(make_cluster: ClusterFactory) -> None:
    cluster = await make_cluster(api_token=API_TOKEN)
    status, document = await answer(cluster, "GET", "/v1/openapi.json", headers={})  # no token needed
    assert status == 200 and document == DOCUMENT
    status, body = await answer(cluster, "POST", "/v1/jobs", json={"input": {"text": "to be or not to be"}})
    check_answer("/v1/jobs", "POST", status, body)
    job = body["id"]
    cases = [
        ("GET", f"/v1/jobs/{job}/result?wait=30", "/v1/jobs/{id}/result"),
        ("GET", f"/v1/jobs/{job}/result?top=2", "/v1/jobs/{id}/result"),
        ("GET", f"/v1/jobs/{job}", "/v1/jobs/{id}"),
        ("GET", f"/v1/jobs/{job}?splits=all", "/v1/jobs/{id}"),
        ("GET", "/v1/jobs", "/v1/jobs"),
        ("GET", "/v1/cluster", "/v1/cluster"),
        ("GET", "/compute?text=a+b+a", "/compute"),
        ("DELETE", f"/v1/jobs/{job}", "/v1/jobs/{id}"),
        ("GET", "/healthz", "/healthz"),
        ("GET", "/readyz", "/readyz"),
        ("POST", "/v1/jobs?job=nosuchjob", "/v1/jobs"),
        ("GET", "/v1/jobs/nosuchid", "/v1/jobs/{id}"),
        ("GET", f"/v1/jobs/{job}?splits=some", "/v1/jobs/{id}"),
        ("GET", f"/v1/jobs/{job}/result?top=0", "/v1/jobs/{id}/result"),
        ("GET", "/compute", "/compute"),
        ("GET", "/v1/cluster?wait_mappers=x", "/v1/cluster"),
    ]
    seen = set()
    for method, url, path in cases:
        status, body = await answer(cluster, method, url, data=b"x" if method == "POST" else None)
        check_answer(path, method, status, body)
        seen.add(status)
    assert seen == {200, 400, 404}
    status, body = await answer(cluster, "GET", "/v1/jobs", headers={"Authorization": "Bearer wrong"})
    assert status == 401
    check_answer("/v1/jobs", "GET", status, body)


@pytest.mark.parametrize("bad", [{"error": "x"}, {"message": "no code"}, {"error": 4, "message": "m"}])
def test_the_error_schema_refuses_other_shapes(bad: dict[str, Any]) -> None:
    """The schema the answers were checked against is not vacuous."""
    with pytest.raises(ValidationError, match=r"is a required property|is not of type"):
        check_answer("/v1/jobs", "GET", 401, bad)


async def test_refusals_of_hosts_sites_and_claimed_outputs_match_the_document(make_cluster: ClusterFactory,
                                                                              data_root: Path) -> None:
    cluster = await make_cluster()  # no MR_API_TOKEN: the cross-site and simple-write rules apply
    (data_root / "book.txt").write_text("to be or not to be")
    (data_root / "done").mkdir()
    (data_root / "done" / SUCCESS).write_text("{}")
    spec = {"input": {"path": "book.txt"}}
    cases: list[tuple[str, str, str, dict[str, Any], int]] = [
        ("POST", "/v1/jobs", "/v1/jobs", {"json": spec, "headers": {"Host": "rebound.example.com"}}, 421),
        ("GET", "/healthz", "/healthz", {"headers": {"Host": "rebound.example.com"}}, 421),
        ("POST", "/v1/jobs", "/v1/jobs", {"data": b"a b", "headers": {"Content-Type": "text/plain"}}, 403),
        ("GET", "/v1/jobs", "/v1/jobs", {"headers": {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"}},
         403),
        ("POST", "/v1/jobs", "/v1/jobs", {"json": {**spec, "output": {"path": "done"}}, "headers": {}}, 409),
    ]
    for method, url, path, kwargs, expected in cases:
        status, body = await answer(cluster, method, url, **kwargs)
        assert status == expected, body
        check_answer(path, method, status, body)


async def test_an_upload_with_params_output_and_several_parts_matches_the_document(make_cluster: ClusterFactory,
                                                                                   data_root: Path) -> None:
    cluster = await make_cluster(api_token=API_TOKEN)
    parameters = {p["name"] for p in DOCUMENT["paths"]["/v1/jobs"]["post"]["parameters"]}
    assert {"job", "name", "split_size", "param", "output"} <= parameters
    assert "multipart/mixed" in DOCUMENT["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]
    writer = aiohttp.MultipartWriter("mixed")
    for name in ("a.txt", "b.txt"):
        writer.append(b"to be or not to be\n", {"Content-Disposition": f'attachment; filename="{name}"'})
    status, body = await answer(cluster, "POST", "/v1/jobs?param=lower=true&output=out", data=writer)
    check_answer("/v1/jobs", "POST", status, body)
    assert status == 202 and body["output"]["path"] == "out"
    status, body = await answer(cluster, "POST", "/v1/jobs?params=lower", data=b"a b",
                                headers={"Authorization": f"Bearer {API_TOKEN}",
                                         "Content-Type": "application/octet-stream"})
    check_answer("/v1/jobs", "POST", status, body)
    assert status == 400 and "unknown query parameters 'params'" in body["message"]
