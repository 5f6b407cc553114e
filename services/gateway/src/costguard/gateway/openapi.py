"""The OpenAPI description of the gateway's HTTP API."""

from __future__ import annotations

from typing import Any

_MONEY = {"type": "string", "pattern": r"^-?\d+(\.\d+)?$"}
_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "field": {"type": "string"}},
}
_OBJECT = {"type": "object"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): _json({"$ref": "#/components/schemas/Error"}, "error") for code in codes}


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


def _path(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.:@-]{1,64}$"},
    }


_DAYS = _query("days", {"type": "string", "enum": ["7", "30"]})
_ADMIN: list[dict[str, list[str]]] = [{"bearer": []}, {"session": []}]

_CAP = {
    "type": ["integer", "null"],
    "minimum": 0,
    "maximum": 2**63 - 1,
    "description": "per day; null (or 9223372036854775807) means no cap",
}

BUDGET = {
    "type": "object",
    "required": ["apply_scope"],
    "additionalProperties": False,
    "properties": {
        "apply_scope": {"type": "string", "description": "global, a tier, or user:<id>"},
        "daily_cpu_ms_cap": _CAP,
        "daily_jobs_cap": _CAP,
        "llm_input_tokens_cap": _CAP,
        "llm_output_tokens_cap": _CAP,
        "daily_cost_usd_cap": {
            "type": ["string", "null"],
            "description": "USD per day, a decimal string; null: no cost cap",
        },
        "alert_thresholds": {"type": "array", "items": {"type": "string"}},
        "enabled": {"type": "boolean"},
    },
}


def _get(
    summary: str, params: list[dict[str, Any]], ok: dict[str, Any], *errors: int
) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "security": _ADMIN,
            "parameters": params,
            "responses": {"200": _json(ok), **_errors(400, 401, 403, *errors)},
        }
    }


def document() -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/healthz": {"get": {"summary": "Liveness", "responses": {"200": _json(_OBJECT)}}},
        "/readyz": {
            "get": {
                "summary": "Readiness of Postgres, Redis and the services",
                "responses": {"200": _json(_OBJECT), "503": _json(_OBJECT)},
            }
        },
        "/api/admin/session": {
            "post": {
                "summary": "Sign in with an admin token; sets an HttpOnly session cookie",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["token"],
                                "properties": {"token": {"type": "string"}},
                            }
                        }
                    },
                },
                "responses": {"200": _json(_OBJECT), **_errors(400, 401)},
            },
            "delete": {"summary": "Sign out", "responses": {"200": _json(_OBJECT)}},
        },
        "/api/admin/me": {
            "get": {
                "summary": "Who is signed in",
                "responses": {"200": _json(_OBJECT), **_errors(401)},
            }
        },
        "/api/admin/cost/summary": _get(
            "Cards, today's use against caps, series, forecast, unpriced models", [_DAYS], _OBJECT
        ),
        "/api/admin/cost/users": _get(
            "Top users by cost",
            [_DAYS, _query("limit", {"type": "integer", "minimum": 1, "maximum": 500})],
            _OBJECT,
        ),
        "/api/admin/cost/budgets": {
            **_get("Budgets", [], _OBJECT),
            "post": {
                "summary": "Create or update one budget (the throttle applies it within a second)",
                "security": _ADMIN,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": BUDGET}},
                },
                "responses": {"200": _json(_OBJECT), **_errors(400, 401, 403)},
            },
        },
        "/api/admin/cost/alert:test": {
            "post": {
                "summary": "Send a test alert to the webhook",
                "security": _ADMIN,
                "responses": {"200": _json(_OBJECT), **_errors(401, 403, 409)},
            }
        },
        "/api/admin/cost/episodes/{episode_id}": _get(
            "One episode's cost and breakdown", [_path("episode_id")], _OBJECT, 404
        ),
        "/api/admin/cost/episodes/{episode_id}/recalculate": {
            "post": {
                "summary": "Recalculate one episode's cost",
                "security": _ADMIN,
                "parameters": [_path("episode_id")],
                "responses": {"200": _json(_OBJECT), **_errors(400, 401, 403, 404, 503)},
            }
        },
        "/api/admin/cost/podcasts/{podcast_id}/episodes": _get(
            "A podcast's episodes by cost",
            [
                _path("podcast_id"),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 5000}),
            ],
            _OBJECT,
        ),
        "/api/admin/cost/daily": _get(
            "Daily summary for a date range (default the last 30 days)",
            [
                _query("from", {"type": "string", "format": "date"}),
                _query("to", {"type": "string", "format": "date"}),
            ],
            _OBJECT,
        ),
        "/api/admin/cost/monthly": _get(
            "Monthly summary",
            [
                _query("year", {"type": "integer", "minimum": 2000, "maximum": 2100}),
                _query("month", {"type": "integer", "minimum": 1, "maximum": 12}),
            ],
            _OBJECT,
            404,
        ),
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "costguard gateway", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": {"Error": _ERROR, "Money": _MONEY},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "costguard_session"},
            },
        },
    }
