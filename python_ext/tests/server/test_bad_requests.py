"""Every bad request to the kerasgpu API gets a JSON 4xx that says what was wrong: never a 500 with a
traceback, never Jupyter's HTML page. Real Jupyter server, raw HTTP requests (the path exactly as
written, so empty and odd segments reach the server as a client would send them)."""

from __future__ import annotations

import json
import os
import urllib.parse

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

NOT_A_PID = "is not a process id: a pid is a whole number from 1 to 2147483647"
NOT_OURS = "is not a kernel of this Jupyter server"


@pytest.fixture
def raw(jp_fetch, jp_serverapp, jp_http_port, jp_base_url):
    """`raw(method, path_after_api)` -> (status, JSON body); the path is sent as given (quoted once)."""
    token = jp_serverapp.identity_provider.token

    async def call(method: str, path: str, body: str | None = None):
        url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}kerasgpu/api/v1/{path}"
        if method == "POST" and body is None:
            body = ""
        try:
            response = await AsyncHTTPClient().fetch(
                url, method=method, body=body, headers={"Authorization": f"token {token}"}, request_timeout=30
            )
        except HTTPClientError as err:
            response = err.response
        assert response is not None
        assert response.headers["Content-Type"].startswith("application/json"), response.body[:300]
        return response.code, json.loads(response.body)

    return call


def shutdown(pid: str) -> str:
    return f"processes/{urllib.parse.quote(pid, safe='')}/shutdown"


@pytest.mark.parametrize(
    "pid",
    [
        "9" * 4301,  # over Python's int-from-text limit
        "1" * 10_000,
        "-1",
        "abc",
        "1.5",
        "",
        "0",
        "2147483648",
        "99999999999",
        " 42",
        "42 ",
        "+42",
        "0x2a",
        "1e3",
        "4_2",
        "\u0664\u0662",  # Arabic-Indic digits: int() would read them
        "..",
        "%00",
    ],
    ids=lambda pid: repr(pid[:12]) + (f"...({len(pid)})" if len(pid) > 12 else ""),
)
async def test_a_pid_of_any_shape_gets_a_json_400(fake_smi, raw, pid):
    code, data = await raw("POST", shutdown(pid))
    assert code == 400
    assert NOT_A_PID in data["message"]
    assert len(data["message"]) < 300, "a 4301-digit pid is not echoed whole"


@pytest.mark.parametrize("pid", ["4242", "1", "2147483647", "this test's own"])
async def test_a_pid_that_is_not_our_kernel_gets_a_json_404(fake_smi, raw, pid):
    # the test process's pid is read at run time: test ids must be the same in every pytest-xdist worker
    pid = str(os.getpid()) if pid == "this test's own" else pid
    code, data = await raw("POST", shutdown(pid))
    assert code == 404
    assert NOT_OURS in data["message"]


@pytest.mark.parametrize(
    ("method", "path", "status", "words"),
    [
        ("GET", "nothing-here", 404, "No kerasgpu endpoint 'nothing-here'"),
        ("GET", "devices/extra", 404, "No kerasgpu endpoint"),
        ("POST", "processes/42", 404, "No kerasgpu endpoint"),
        ("GET", "x" * 5000, 404, "No kerasgpu endpoint"),
        ("GET", shutdown("42"), 405, "Method Not Allowed"),
        ("POST", "devices", 405, "Method Not Allowed"),
        ("GET", "history?seconds=1e400", 400, "seconds must be a number"),
        ("GET", "history?seconds=" + "9" * 5000, 400, "seconds must be a number"),
    ],
)
async def test_other_bad_requests_get_json_with_the_reason(fake_smi, raw, method, path, status, words):
    code, data = await raw(method, path)
    assert code == status
    assert words in data["message"]
    assert len(data["message"]) < 300


async def test_the_404_lists_every_endpoint(fake_smi, raw):
    code, data = await raw("GET", "nothing-here")
    assert code == 404
    listed = data["message"].split("the API has ", 1)[1].rstrip(".").split(", ")
    for endpoint in ("devices", "history", "processes", "stream", "snippets", "tensorflow", "fleet"):
        assert endpoint in listed, data["message"]
