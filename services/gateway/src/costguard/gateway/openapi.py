"""The OpenAPI description of the gateway's HTTP API."""

from __future__ import annotations

from typing import Any

from costguard.common.config import DEFAULT_TIERS
from costguard.gateway.dispatch import GIVE_UP_ATTEMPTS

_MONEY = {"type": "string", "pattern": r"^-?\d+(\.\d+)?$"}
_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "what was wrong, in words"},
        "field": {
            "type": "string",
            "description": "what it was wrong with: a parameter or body field, `body` for the "
            "body as a whole, `Origin` or `Content-Type` for a refused cross-site write",
        },
    },
}
_OBJECT = {"type": "object"}
_REF_MONEY = {"$ref": "#/components/schemas/Money"}
_COUNT = {"type": "integer", "minimum": 0}
_MONEY_MAP = {"type": "object", "additionalProperties": _REF_MONEY}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR_MEANINGS = {
    400: "bad input, naming the field",
    401: "no valid credentials",
    403: "not an admin, or a write from another origin (field Origin)",
    404: "not found",
    409: "not configured",
    413: "a body larger than 64 KiB",
    415: "a body that is not Content-Type: application/json",
    503: "Postgres, Redis or a service is unavailable",
}
# Every admin route: bad input, no credentials, no admin role, a store down.
_READ = (400, 401, 403, 503)
# Every write: a body is JSON within the limits, from the dashboard's own origin.
_WRITE = (*_READ, 413, 415)


def _errors(*codes: int) -> dict[str, Any]:
    return {
        str(code): _json({"$ref": "#/components/schemas/Error"}, _ERROR_MEANINGS[code])
        for code in sorted(set(codes))
    }


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


def _path(name: str, example: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.:@-]{1,64}$"},
        "example": example,
    }


_DAYS = _query(
    "days",
    {
        "type": "integer",
        "minimum": 1,
        "maximum": 92,
        "description": "the days up to `to` (default 7); not with `from`",
    },
)
_DATE = {"type": "string", "format": "date"}
# Every analytics route's range: days, or from .. to (at most 92 days; to defaults to today).
_RANGE = [
    _DAYS,
    _query("from", {**_DATE, "description": "first day; at most 91 days before `to`"}),
    _query("to", {**_DATE, "description": "last day, default today (reporting time zone)"}),
]
_ADMIN: list[dict[str, list[str]]] = [{"bearer": []}, {"session": []}]

_CAP = {
    "type": ["integer", "null"],
    "minimum": 0,
    "maximum": 2**63 - 1,
    "description": "per day; null (or 9223372036854775807) means no cap",
}

# As the handler checks them, so that generated data that fits reaches the database.
_USD_CAP = {
    "type": ["string", "null"],
    "pattern": r"^[0-9]{1,12}(\.[0-9]{1,6})?$",
    "description": "USD per day, a decimal string below 10^12 with at most 6 places; null: no "
    "cost cap",
}
_THRESHOLD = {
    "type": "string",
    "pattern": r"^(10(\.0{1,4})?|[1-9](\.[0-9]{1,4})?|0\.[0-9]{0,3}[1-9])$",
    "description": "a fraction of the cap, above 0 and at most 10, with at most 4 places",
}


def budget(tiers: tuple[str, ...]) -> dict[str, Any]:
    """The body of POST /api/admin/cost/budgets, with the configured ``tiers``."""
    return {
        "type": "object",
        "required": ["apply_scope"],
        "additionalProperties": False,
        "properties": {
            "apply_scope": {
                "description": "global, a tier, or user:<id>",
                "anyOf": [
                    {"type": "string", "enum": ["global", *tiers]},
                    {"type": "string", "pattern": "^user:[A-Za-z0-9_.@-]{1,64}$"},
                ],
            },
            "daily_cpu_ms_cap": _CAP,
            "daily_jobs_cap": _CAP,
            "llm_input_tokens_cap": _CAP,
            "llm_output_tokens_cap": _CAP,
            "daily_cost_usd_cap": _USD_CAP,
            "alert_thresholds": {
                "type": "array",
                "minItems": 1,
                "maxItems": 5,
                "items": _THRESHOLD,
                "description": 'default ["0.8", "1.0"]',
            },
            "enabled": {"type": "boolean"},
        },
    }


_USAGE_COUNTS = ("jobs", "ai_calls", "cpu_ms", "tokens_in", "tokens_out")


def _record(properties: dict[str, Any]) -> dict[str, Any]:
    """An object with every one of ``properties`` required (more may come later)."""
    return {"type": "object", "required": list(properties), "properties": properties}


def _totals(counted: str, **more: dict[str, Any]) -> dict[str, Any]:
    counts = {name: _COUNT for name in _USAGE_COUNTS}
    return _record({counted: _COUNT, **counts, "cost_usd": _REF_MONEY, **more})


_CATEGORY_COSTS = {
    "ai_cost_usd": _REF_MONEY,
    "aws_cost_usd": _REF_MONEY,
    "compute_cost_usd": _REF_MONEY,
    "unpriced_cost_usd": _REF_MONEY,
}

PODCAST_EPISODE = _record(
    {
        "episode_id": {"type": "string"},
        "total_cost_usd": _REF_MONEY,
        **_CATEGORY_COSTS,
        "has_unpriced_events": {"type": "boolean"},
        "event_count": _COUNT,
        "calculated_at": {"type": "string", "format": "date-time"},
    }
)

PODCAST_EPISODES = _record(
    {
        "podcast_id": {"type": "string"},
        "episode_count": {"type": "integer", "minimum": 1},
        "event_count": _COUNT,
        "total_cost_usd": _REF_MONEY,
        "average_cost_usd": _REF_MONEY,
        "max_cost_usd": _REF_MONEY,
        **_CATEGORY_COSTS,
        "episodes_with_unpriced_events": _COUNT,
        "episodes": {"type": "array", "items": {"$ref": "#/components/schemas/PodcastEpisode"}},
    }
)

DAY = _record(
    {
        "date": {"type": "string", "format": "date"},
        **{name: _COUNT for name in _USAGE_COUNTS},
        "cost_usd": _REF_MONEY,
        "cost_by_service_json": _MONEY_MAP,
        "tier_breakdown_json": _OBJECT,
    }
)

DAILY = _record(
    {
        "from": {"type": "string", "format": "date"},
        "to": {"type": "string", "format": "date"},
        "days": {"type": "array", "items": {"$ref": "#/components/schemas/Day"}},
        "totals": _totals("days"),
    }
)

MONTH = _record(
    {
        "year": {"type": "integer"},
        "month": {"type": "integer", "minimum": 1, "maximum": 12},
        **{name: _COUNT for name in _USAGE_COUNTS},
        "cost_usd": _REF_MONEY,
        "cost_by_service": _MONEY_MAP,
        "podcast_breakdown": _MONEY_MAP,
        "days_rolled": _COUNT,
        "updated_at": {"type": "string", "format": "date-time"},
    }
)

YEAR = _record(
    {
        "year": {"type": "integer"},
        "months": {"type": "array", "items": {"$ref": "#/components/schemas/Month"}},
        "totals": _totals(
            "months",
            days_rolled=_COUNT,
            cost_by_service=_MONEY_MAP,
            podcast_breakdown=_MONEY_MAP,
        ),
    }
)


FORECAST = _record(
    {
        "month_to_date_cost_usd": _REF_MONEY,
        "month_projected_cost_usd": {
            **_REF_MONEY,
            "description": "month to date + remaining_days x daily_average_usd (the month "
            "to date alone when no full day is averaged)",
        },
        "method": {
            "type": "string",
            "description": "how the projection was made, in words, e.g. 'month to date + "
            "10.25 days x $1.0300/day, the average of the last 7 full days'",
        },
        "daily_average_usd": {
            "anyOf": [_REF_MONEY, {"type": "null"}],
            "description": "the average cost of the full days among the 7 before today that "
            "were rolled up (today, a partial day, never counts); null when there is none",
        },
        "days_averaged": {"type": "integer", "minimum": 0, "maximum": 7},
        "remaining_days": {
            "type": "string",
            "pattern": r"^\d+(\.\d+)?$",
            "description": "what is left of today, as a fraction of the day in the configured "
            "time zone, plus the days after today in the month",
        },
    }
)

_CHANGE = {
    "type": ["number", "null"],
    "description": "(current - previous) / previous; null when the previous figure is 0",
}
_CARDS = _record({"cost_usd": _REF_MONEY, **{name: _COUNT for name in _USAGE_COUNTS}})

ME = _record(
    {
        "name": {"type": "string"},
        "role": {"type": "string"},
        "timezone": {
            "type": "string",
            "description": "the reporting time zone, e.g. Europe/London",
        },
        "today": {**_DATE, "description": "today's date in that time zone"},
    }
)

SUMMARY = _record(
    {
        "days": {"type": "integer", "minimum": 1, "maximum": 92},
        "from": _DATE,
        "to": _DATE,
        "timezone": {"type": "string"},
        "partial_date": {
            "type": ["string", "null"],
            "format": "date",
            "description": "today when the range holds it: its figures in cards, sparklines "
            "and series are today's so far, a partial day; null for a range ending earlier",
        },
        "cards": {
            **_CARDS,
            "properties": {
                **_CARDS["properties"],
                "cache_hit_rate": {"type": "number", "minimum": 0, "maximum": 1},
            },
            "required": [*_CARDS["required"], "cache_hit_rate"],
        },
        "previous": {
            **_record({"from": _DATE, "to": _DATE, "cards": _CARDS}),
            "description": "the period before: as many days, ending the day before `from`",
        },
        "change": _record(
            {name: _CHANGE for name in ("cost_usd", "jobs", "ai_calls", "tokens_in", "tokens_out")}
        ),
        "sparklines": _OBJECT,
        "today": _OBJECT,
        "series": _OBJECT,
        "forecast": {"$ref": "#/components/schemas/Forecast"},
        "unpriced": {"type": "array"},
    }
)


_BREAKDOWN_TOTAL = _record(
    {"cost_usd": _REF_MONEY, "tokens_in": _COUNT, "tokens_out": _COUNT, "calls": _COUNT}
)
BREAKDOWN = _record(
    {
        "by": {"type": "string", "enum": ["model", "service", "domain", "tier"]},
        "from": _DATE,
        "to": _DATE,
        "days": {"type": "integer", "minimum": 1, "maximum": 92},
        "timezone": {"type": "string"},
        "partial_date": {"type": ["string", "null"], "format": "date"},
        "previous": _record({"from": _DATE, "to": _DATE}),
        "total": _BREAKDOWN_TOTAL,
        "previous_total": _BREAKDOWN_TOTAL,
        "rows": {
            "type": "array",
            "items": _record(
                {
                    "key": {
                        "type": ["string", "null"],
                        "description": "null: the rest, what the dimension does not cover",
                    },
                    "label": {"type": "string"},
                    **_BREAKDOWN_TOTAL["properties"],
                    "share": {"type": "number"},
                    "previous_cost_usd": _REF_MONEY,
                    "change": _CHANGE,
                }
            ),
        },
    }
)


_ACTIONS = ("ALLOW", "DOWNGRADE", "DEFER", "DENY")
DECISIONS = _record(
    {
        "from": _DATE,
        "to": _DATE,
        "days": {"type": "integer", "minimum": 1, "maximum": 92},
        "timezone": {"type": "string"},
        "partial_date": {"type": ["string", "null"], "format": "date"},
        "actions": {"type": "array", "items": {"type": "string", "enum": list(_ACTIONS)}},
        "totals": {
            "type": "array",
            "items": _record(
                {"tier": {"type": "string"}, **dict.fromkeys(_ACTIONS, _COUNT), "total": _COUNT}
            ),
        },
        "series": {
            "type": "array",
            "items": _record({"date": _DATE, **dict.fromkeys(_ACTIONS, _COUNT)}),
        },
    }
)


_USER_TOTALS = _record(
    {
        "cost_usd": _REF_MONEY,
        **{name: _COUNT for name in ("jobs", "ai_calls", "tokens_in", "tokens_out")},
    }
)
_METRICS = ["jobs", "cpu_ms", "llm_input_tokens", "llm_output_tokens", "cost_usd"]
_FIGURE = {"type": "string", "pattern": r"^-?\d+(\.\d+)?$", "description": "a decimal string"}
_TIMESTAMP = {"type": "string", "format": "date-time"}
USER_DETAIL = _record(
    {
        "user_id": {"type": "string"},
        "tier": {"type": "string", "description": "the tier of the user's latest day"},
        "from": _DATE,
        "to": _DATE,
        "days": {"type": "integer", "minimum": 1, "maximum": 92},
        "timezone": {"type": "string"},
        "partial_date": {"type": ["string", "null"], "format": "date"},
        "totals": {"$ref": "#/components/schemas/UserTotals"},
        "previous_totals": {"$ref": "#/components/schemas/UserTotals"},
        "change": _record({"cost_usd": _CHANGE}),
        "days_series": {
            "type": "array",
            "items": _record({"date": _DATE, **_USER_TOTALS["properties"]}),
            "description": "every date of the range, zeros where the user has no row",
        },
        "by_model": {
            "type": "array",
            "items": _record({"key": {"type": "string"}, **_BREAKDOWN_TOTAL["properties"]}),
            "description": "the user's LLM calls by provider/model at their stored prices, by cost",
        },
        "by_service": {
            "type": "array",
            "items": _record({"key": {"type": "string"}, "cost_usd": _REF_MONEY, "events": _COUNT}),
            "description": "the user's cost events by service, by cost",
        },
        "recent_events": {
            "type": "array",
            "maxItems": 50,
            "description": "the user's newest 50 events of the range, newest first",
            "items": _record(
                {
                    "kind": {"type": "string", "enum": ["job", "llm", "cost"]},
                    "event_id": {"type": "string"},
                    "at": _TIMESTAMP,
                    "name": {"type": "string"},
                    "cost_usd": {
                        "anyOf": [_REF_MONEY, {"type": "null"}],
                        "description": "the stored price; null until the event is priced",
                    },
                    "detail": {"type": "string"},
                    "success": {"type": "boolean"},
                    "price_note": {
                        "type": ["string", "null"],
                        "description": "why the price is $0, missing, estimated or a fallback"
                        " (a cache hit, usage not reported, a model the price library does not"
                        " know); null when it is the library's price for the reported usage",
                    },
                }
            ),
        },
        "caps": {
            "type": "array",
            "description": "today's caps on the user's own scope and on their tier",
            "items": _record(
                {
                    "scope": {"type": "string"},
                    "metric": {"type": "string", "enum": _METRICS},
                    "cap": _FIGURE,
                    "used": _FIGURE,
                    "fraction": {"type": "number"},
                }
            ),
        },
        "decisions": {
            "type": "array",
            "description": "the throttle's decisions on the user by day, newest first",
            "items": _record(
                {
                    "date": _DATE,
                    "tier": {"type": "string"},
                    "action": {"type": "string", "enum": list(_ACTIONS)},
                    "decisions": _COUNT,
                    "last_reason": {"type": "string"},
                    "last_at": _TIMESTAMP,
                }
            ),
        },
    }
)

_STATUSES = ["sent", "failed", "pending"]
BUDGET_ALERT = _record(
    {
        "id": {"type": "integer"},
        "day": _DATE,
        "scope": {"type": "string"},
        "metric": {"type": "string", "enum": _METRICS},
        "threshold": _FIGURE,
        "kind": {"type": "string", "enum": ["crossed", "resolved"]},
        "used": _FIGURE,
        "cap": _FIGURE,
        "status": {
            "type": "string",
            "enum": _STATUSES,
            "description": "sent: delivered; pending: still retried; failed: given up after "
            f"{GIVE_UP_ATTEMPTS} attempts",
        },
        "created_at": _TIMESTAMP,
        "delivered_at": {"type": ["string", "null"], "format": "date-time"},
        "attempts": _COUNT,
        "last_error": {"type": ["string", "null"]},
    }
)
ALERTS = _record(
    {
        "from": _DATE,
        "to": _DATE,
        "counts": {
            **_record({name: _COUNT for name in (*_STATUSES, "resolved")}),
            "description": "over the whole range, whatever status asks for",
        },
        "alerts": {"type": "array", "items": {"$ref": "#/components/schemas/BudgetAlert"}},
    }
)

TOP_USERS = _record(
    {
        "days": {"type": "integer", "minimum": 1, "maximum": 92},
        "from": _DATE,
        "to": _DATE,
        "users": {
            "type": "array",
            "items": _record(
                {
                    "user_id": {"type": "string"},
                    "tier": {"type": "string"},
                    "cost_usd": _REF_MONEY,
                    **{name: _COUNT for name in ("jobs", "ai_calls", "tokens_in", "tokens_out")},
                }
            ),
        },
    }
)

EXPORT_TABLES = [
    "top_users", "cost_by_day", "breakdown", "decisions", "alerts", "unpriced", "user_days",
    "user_models", "user_services", "user_events",
]  # fmt: skip
_CSV = {
    "description": "the table as CSV (RFC 4180): a header row of the JSON field names, then "
    "the JSON route's rows; a text cell starting with = + - @, a tab or a carriage return "
    "gets a leading ' (numbers never do); sent as an attachment named "
    "costguard-<table>-<from>-<to>.csv",
    "content": {"text/csv": {"schema": {"type": "string"}}},
}


def _get(
    summary: str, params: list[dict[str, Any]], ok: dict[str, Any], *errors: int
) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "security": _ADMIN,
            "parameters": params,
            "responses": {"200": _json(ok), **_errors(*_READ, *errors)},
        }
    }


def document(tiers: tuple[str, ...] = DEFAULT_TIERS) -> dict[str, Any]:
    """The document, for a gateway configured with ``tiers``."""
    paths: dict[str, Any] = {
        "/healthz": {"get": {"summary": "Liveness", "responses": {"200": _json(_OBJECT)}}},
        "/readyz": {
            "get": {
                "summary": "Readiness of Postgres, Redis and the services",
                "responses": {"200": _json(_OBJECT), "503": _json(_OBJECT)},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/api/openapi.json": {
            "get": {"summary": "This document", "responses": {"200": _json(_OBJECT)}}
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
                                "properties": {
                                    "token": {"type": "string", "minLength": 1, "maxLength": 512}
                                },
                            }
                        }
                    },
                },
                "responses": {"200": _json(_OBJECT), **_errors(*_WRITE)},
            },
            "delete": {
                "summary": "Sign out: the session is revoked, its cookie no longer signs in",
                "responses": {"200": _json(_OBJECT), **_errors(403, 415, 503)},
            },
        },
        "/api/admin/me": {
            "get": {
                "summary": "Who is signed in, the reporting time zone and today's date in it",
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Me"}),
                    **_errors(401, 503),
                },
            }
        },
        "/api/admin/cost/summary": _get(
            "Cards beside the previous period's and the change, today's use against caps, "
            "series (today marked partial), the month's forecast with its method, unpriced "
            "models; over days (1 to 92, default 7) or from .. to (at most 92 days)",
            _RANGE,
            {"$ref": "#/components/schemas/Summary"},
        ),
        "/api/admin/cost/users": _get(
            "Top users by cost over the last 1 to 92 days (days), or from one date to another "
            "(from, and to: default today; at most 92 days; not with days)",
            [
                *_RANGE,
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
            ],
            {"$ref": "#/components/schemas/TopUsers"},
        ),
        "/api/admin/cost/users/{user_id}": _get(
            "One user's page: their cost over the range beside the period before, every "
            "date's figures, by model and by service (at each event's stored price), their "
            "newest 50 events, today's caps on them and on their tier, the throttle's "
            "decisions on them (404 for a user never seen)",
            [_path("user_id", "u1"), *_RANGE],
            {"$ref": "#/components/schemas/UserDetail"},
            404,
        ),
        "/api/admin/cost/breakdown": _get(
            "The range's cost by model, service, domain or tier (by), each row beside the "
            "previous period's; a row with key null holds the rest, so that the rows add up "
            "to total.cost_usd, the summary's cost card for the same range",
            [
                {
                    **_query(
                        "by", {"type": "string", "enum": ["model", "service", "domain", "tier"]}
                    ),
                    "required": True,
                },
                *_RANGE,
            ],
            {"$ref": "#/components/schemas/Breakdown"},
        ),
        "/api/admin/cost/decisions": _get(
            "The throttle's decisions over the range: totals by tier and every date's counts "
            "of each action (all tiers, or the one asked for)",
            [*_RANGE, _query("tier", {"type": "string", "enum": list(tiers)})],
            {"$ref": "#/components/schemas/Decisions"},
        ),
        "/api/admin/cost/alerts": _get(
            "The threshold alerts of the range's days, newest first, with how each one's "
            "delivery went (sent, pending while retried, failed once given up) and the "
            "counts of each over the whole range",
            [
                *_RANGE,
                _query("status", {"type": "string", "enum": _STATUSES}),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
            ],
            {"$ref": "#/components/schemas/Alerts"},
        ),
        "/api/admin/cost/export.csv": {
            "get": {
                "summary": "A table of the dashboard as CSV, written from the JSON route that "
                "holds it under the same query: top_users (limit), cost_by_day and unpriced "
                "(the summary), breakdown (by, required), decisions (tier), alerts (status, "
                "limit), user_days, user_models, user_services, user_events (user, required: "
                "404 for a user never seen)",
                "security": _ADMIN,
                "parameters": [
                    {
                        **_query("table", {"type": "string", "enum": EXPORT_TABLES}),
                        "required": True,
                    },
                    *_RANGE,
                    _query(
                        "by", {"type": "string", "enum": ["model", "service", "domain", "tier"]}
                    ),
                    _query("tier", {"type": "string", "enum": list(tiers)}),
                    _query("status", {"type": "string", "enum": _STATUSES}),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
                    _query("user", {"type": "string", "pattern": "^[A-Za-z0-9_.:@-]{1,64}$"}),
                ],
                "responses": {"200": _CSV, **_errors(*_READ, 404)},
            }
        },
        "/api/admin/cost/budgets": {
            **_get("Budgets", [], _OBJECT),
            "post": {
                "summary": "Create or update one budget (the throttle applies it within a second)",
                "security": _ADMIN,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": budget(tiers)}},
                },
                "responses": {"200": _json(_OBJECT), **_errors(*_WRITE)},
            },
        },
        "/api/admin/cost/alert:test": {
            "post": {
                "summary": "Send a test alert to the webhook",
                "security": _ADMIN,
                "responses": {"200": _json(_OBJECT), **_errors(401, 403, 409, 415, 503)},
            }
        },
        "/api/admin/cost/episodes/{episode_id}": _get(
            "One episode's cost and breakdown", [_path("episode_id", "ep-1")], _OBJECT, 404
        ),
        "/api/admin/cost/episodes/{episode_id}/recalculate": {
            "post": {
                "summary": "Recalculate one episode's cost",
                "security": _ADMIN,
                "parameters": [_path("episode_id", "ep-1")],
                "responses": {"200": _json(_OBJECT), **_errors(*_READ, 404, 415)},
            }
        },
        "/api/admin/cost/podcasts/{podcast_id}/episodes": _get(
            "A podcast's episodes by cost, with totals and the AI / AWS / compute split "
            "(404 when it has no episode costs)",
            [
                _path("podcast_id", "pod-1"),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 5000}),
            ],
            {"$ref": "#/components/schemas/PodcastEpisodes"},
            404,
        ),
        "/api/admin/cost/daily": _get(
            "Daily summary and its totals for a date range (default the last 30 days)",
            [
                _query("from", {"type": "string", "format": "date"}),
                _query("to", {"type": "string", "format": "date"}),
            ],
            {"$ref": "#/components/schemas/Daily"},
        ),
        "/api/admin/cost/monthly": _get(
            "One month (year and month; default the current month; 404 when not rolled up), "
            "or every rolled-up month of a year with its totals (year alone)",
            [
                _query("year", {"type": "integer", "minimum": 2000, "maximum": 2100}),
                _query(
                    "month",
                    {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": 12,
                        "description": "needs year; without it the answer is a 400",
                    },
                ),
            ],
            {
                "anyOf": [
                    {"$ref": "#/components/schemas/Month"},
                    {"$ref": "#/components/schemas/Year"},
                ]
            },
            404,
        ),
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "costguard gateway", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": {
                "Error": _ERROR,
                "Money": _MONEY,
                "PodcastEpisode": PODCAST_EPISODE,
                "PodcastEpisodes": PODCAST_EPISODES,
                "Day": DAY,
                "Daily": DAILY,
                "Month": MONTH,
                "Year": YEAR,
                "Forecast": FORECAST,
                "Summary": SUMMARY,
                "Me": ME,
                "Breakdown": BREAKDOWN,
                "Decisions": DECISIONS,
                "TopUsers": TOP_USERS,
                "UserTotals": _USER_TOTALS,
                "UserDetail": USER_DETAIL,
                "BudgetAlert": BUDGET_ALERT,
                "Alerts": ALERTS,
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "costguard_session"},
            },
        },
    }
