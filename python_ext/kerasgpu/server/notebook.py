"""The notebook tools: GET snippets (the catalog) and POST notebook-tools/plan (what a tool does).

The frontend sends the notebook's cells, the tool and the active cell; the answer is the plan of
`plans.plan` (edits to apply as one undo step, messages, refusals). Authenticated and
authorized like every other handler; it reads only the request body and runs nothing.
"""

from __future__ import annotations

import json

import tornado
from jupyter_server.auth.decorator import authorized

from ..core import snippets
from ..core.planner import plans
from .base import BaseHandler, dumps, run_blocking

# A notebook this large is not edited by hand: refuse instead of parsing megabytes per click.
MAX_BODY = 16 * 1024 * 1024


class SnippetsHandler(BaseHandler):
    """GET /kerasgpu/api/v1/snippets: the snippet catalog the cell toolbar and palette insert."""

    @tornado.web.authenticated
    @authorized
    async def get(self):
        self.finish(dumps({"version": 1, "marker": snippets.MARKER, "snippets": snippets.load_catalog()}))


class NotebookToolPlanHandler(BaseHandler):
    """POST notebook-tools/plan {tool, cells, active, options} -> the plan, or a JSON 400 with why."""

    @tornado.web.authenticated
    @authorized
    async def post(self):
        if len(self.request.body) > MAX_BODY:
            raise tornado.web.HTTPError(413, "The notebook is too large to plan on (over 16 MiB).")
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError as exc:
            raise tornado.web.HTTPError(400, f"The request body is not JSON ({exc}).") from exc
        if not isinstance(body, dict):
            raise tornado.web.HTTPError(400, "The request body must be a JSON object.")
        cells = body.get("cells")
        if not isinstance(cells, list):
            raise tornado.web.HTTPError(400, "'cells' must be a list of {source, cell_type, tags, snippet}.")
        options = body.get("options") or {}
        if not isinstance(options, dict):
            raise tornado.web.HTTPError(400, "'options' must be an object.")
        try:
            # Parsing every cell of a large notebook takes a while: not on the event loop.
            encoded = await run_blocking(_plan, str(body.get("tool")), cells, body.get("active"), options)
        except plans.PlanError as exc:
            raise tornado.web.HTTPError(400, str(exc)) from exc
        self.finish(encoded)


def _plan(tool: str, cells: list, active, options: dict) -> str:
    """The tool's plan as JSON (in the executor: a large notebook's plan is long to walk)."""
    return dumps(plans.plan(tool, cells, active, options))
