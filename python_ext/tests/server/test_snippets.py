"""GET /kerasgpu/api/v1/snippets and POST notebook-tools/plan against a real Jupyter server."""

from __future__ import annotations

import ast
import json

import pytest
from kerasgpu.core import snippets
from kerasgpu.core.planner import plans
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
        if s["id"] != "verify_gpu":
            ast.parse(s["code"])
    growth = by_id["memory_growth"]
    assert growth["placement"] == "top"
    assert "set_memory_growth(gpu, True)" in growth["code"]
    assert by_id["mirrored_strategy"]["placement"] == "wrap"
    assert by_id["verify_gpu"]["code"] == "%load_ext kerasgpu\n%gpu_check\n"


NOTEBOOK = [
    {"cell_type": "code", "source": "import keras\nimport numpy as np"},
    {"cell_type": "code", "source": "model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])"},
    {"cell_type": "code", "source": "model.compile(loss='mse')"},
    {"cell_type": "code", "source": "model.fit(np.zeros((8, 4)), np.zeros(8), batch_size=4)"},
]


@pytest.mark.parametrize(
    ("tool", "active", "options"),
    [
        ("distribute", None, {}),
        ("wrap", 1, {}),
        ("verify", None, {}),
        ("snippet", 0, {"id": "memory_growth"}),
    ],
)
async def test_the_planner_answers_what_the_notebook_tools_do(api, tool, active, options):
    body = {"tool": tool, "cells": NOTEBOOK, "active": active, "options": options}
    plan = await api("notebook-tools", "plan", method="POST", body=json.dumps(body))
    assert plan == plans.plan(tool, NOTEBOOK, active, options)  # the one implementation


async def test_the_planner_places_the_strategy_before_the_model_and_refuses_a_wrap_it_cannot_train(api):
    body = {"tool": "distribute", "cells": NOTEBOOK, "active": None}
    plan = await api("notebook-tools", "plan", method="POST", body=json.dumps(body))
    assert plan["ok"] and plan["edits"][0]["index"] == 1
    assert "%gpu_distribute --batch 4" in plan["edits"][0]["source"]
    body = {"tool": "wrap", "cells": NOTEBOOK, "active": 1}
    plan = await api("notebook-tools", "plan", method="POST", body=json.dumps(body))
    assert not plan["ok"] and plan["messages"][0]["action"] == "distribute-notebook"
    assert "compiled in cell 3" in plan["messages"][0]["text"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"tool": "wrap"}', "'cells' must be a list"),
        (b'{"tool": "paint", "cells": []}', "unknown tool"),
        (b'{"tool": "wrap", "cells": [{"source": "x"}], "active": 7}', "not a cell of this notebook"),
        (b'{"tool": "snippet", "cells": [], "options": {"id": "nope"}}', "unknown snippet"),
        (
            b'{"tool": "snippet", "cells": [], "options": {"id": "memory_limit", "limit_mib": -1}}',
            "limit_mib",
        ),
        (b'{"tool": "verify", "cells": [{"source": 5}]}', "source must be a string"),
    ],
)
async def test_bad_plan_requests_get_a_json_400_with_the_reason(jp_fetch, body, words):
    with pytest.raises(HTTPClientError) as err:
        await jp_fetch("kerasgpu", "api", "v1", "notebook-tools", "plan", method="POST", body=body)
    assert err.value.code == 400
    assert words in json.loads(err.value.response.body)["message"]


async def test_the_planner_needs_the_token(jp_fetch, jp_base_url, jp_http_port):
    url = f"http://localhost:{jp_http_port}{jp_base_url}kerasgpu/api/v1/notebook-tools/plan"
    with pytest.raises(HTTPClientError) as err:
        await AsyncHTTPClient().fetch(url, method="POST", body=b"{}")
    assert err.value.code == 403


async def test_the_catalog_needs_the_token(jp_fetch, jp_base_url, jp_http_port):
    url = f"http://localhost:{jp_http_port}{jp_base_url}kerasgpu/api/v1/snippets"
    with pytest.raises(HTTPClientError) as err:
        await AsyncHTTPClient().fetch(url)
    assert err.value.code == 403
