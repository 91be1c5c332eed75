"""GET /kerasgpu/api/v1/snippets against a real Jupyter server."""

from __future__ import annotations

import ast

import pytest
from kerasgpu import snippets
from tornado.httpclient import AsyncHTTPClient, HTTPClientError


async def test_the_catalog_is_served_with_what_the_frontend_inserts(api):
    data = await api("snippets")
    assert data["version"] == 1
    assert data["marker"] == "# {cell}"
    assert data["snippets"] == snippets.load_catalog()
    by_id = {s["id"]: s for s in data["snippets"]}
    assert len(by_id) == 9
    assert {s["placement"] for s in data["snippets"]} == {"top", "wrap", "cursor"}
    for s in data["snippets"]:
        assert set(s) >= {"id", "title", "description", "placement", "order", "code"}
        ast.parse(s["code"])
    growth = by_id["memory_growth"]
    assert growth["placement"] == "top"
    assert "set_memory_growth(gpu, True)" in growth["code"]
    scope = by_id["mirrored_strategy"]
    assert scope["placement"] == "wrap"
    assert scope["prefix"].endswith("with strategy.scope():\n")
    assert scope["indent"] == "    " and scope["suffix"] == ""
    # The frontend's wrap: prefix + the cell indented by `indent` + suffix.
    cell = "model = make_model()\nmodel.compile()\n"
    wrapped = scope["prefix"] + "".join(scope["indent"] + line + "\n" for line in cell.splitlines())
    assert wrapped == snippets.wrap(scope, cell)
    assert "%gpu_check" not in by_id["verify_gpu"]["code"]  # valid Python: the magic is called by API
    assert 'run_line_magic("gpu_check", "")' in by_id["verify_gpu"]["code"]


async def test_the_catalog_needs_the_token(jp_fetch, jp_base_url, jp_http_port):
    url = f"http://localhost:{jp_http_port}{jp_base_url}kerasgpu/api/v1/snippets"
    with pytest.raises(HTTPClientError) as err:
        await AsyncHTTPClient().fetch(url)
    assert err.value.code == 403
