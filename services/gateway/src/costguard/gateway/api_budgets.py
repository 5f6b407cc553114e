"""GET and POST budgets. A change NOTIFYs the throttle, which applies it within a second."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from costguard.gateway import params, queries
from costguard.gateway.auth import Admin, admin_only
from costguard.gateway.bodies import json_object
from costguard.gateway.money import jsonable_row
from costguard.gateway.params import BadInput
from costguard.gateway.resources import resources

_USER_SCOPE = re.compile(r"user:[A-Za-z0-9_.@-]{1,64}")
# The seed's four caps, in UPSERT_BUDGET's order. Null or absent means no cap (stored as
# NO_CAP, the largest bigint, because the seed's columns are NOT NULL); so does NO_CAP itself.
_CAPS = ("daily_cpu_ms_cap", "daily_jobs_cap", "llm_input_tokens_cap", "llm_output_tokens_cap")
_FIELDS = {"apply_scope", "daily_cost_usd_cap", "alert_thresholds", "enabled", *_CAPS}
NO_CAP = 2**63 - 1


def _thresholds(body: dict[str, Any]) -> list[Decimal]:
    raw = body.get("alert_thresholds", ["0.8", "1.0"])
    if not isinstance(raw, list) or not 1 <= len(raw) <= 5:
        raise BadInput("alert_thresholds", "alert_thresholds must be a list of 1 to 5 fractions")
    values = []
    for item in raw:
        value = params.decimal_or_none({"alert_thresholds": item}, "alert_thresholds", 4)
        if value is None or not 0 < value <= 10:
            raise BadInput(
                "alert_thresholds", "each threshold is a fraction of the cap, above 0, at most 10"
            )
        values.append(value)
    return sorted(set(values))


def _scope(body: dict[str, Any], tiers: tuple[str, ...]) -> str:
    scope = body.get("apply_scope")
    if not isinstance(scope, str) or not (
        scope == "global" or scope in tiers or _USER_SCOPE.fullmatch(scope)
    ):
        raise BadInput(
            "apply_scope", f"apply_scope must be global, a tier ({', '.join(tiers)}) or user:<id>"
        )
    return scope


@admin_only
async def list_budgets(request: Request) -> Response:
    rows = await resources(request).pool.fetch(queries.BUDGETS)
    return JSONResponse({"budgets": [jsonable_row(r) for r in rows]})


@admin_only
async def upsert_budget(request: Request) -> Response:
    res = resources(request)
    body = await json_object(request)
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise BadInput(unknown[0], f"unknown field {unknown[0]!r}")
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise BadInput("enabled", "enabled must be true or false")
    admin: Admin = request.state.admin
    row = await res.pool.fetchrow(
        queries.UPSERT_BUDGET,
        _scope(body, res.config.core.tiers),
        *(params.count_or_none(body, cap, maximum=NO_CAP) for cap in _CAPS),
        params.decimal_or_none(body, "daily_cost_usd_cap", 6),
        _thresholds(body),
        enabled,
        admin.name,
    )
    return JSONResponse({"budget": jsonable_row(row)})
