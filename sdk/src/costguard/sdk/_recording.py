"""What every instrumented client records for one call: the per-call recorders.

Token counts follow the OpenTelemetry GenAI conventions (and ``LlmCall``): input tokens
include cached ones, output tokens include reasoning and generated-image ones, so each
provider figure is copied once and never added to another.

A :class:`CallRecorder` is made when an LLM call starts and records exactly one LLM event
for it, however the call ends; a :class:`CostRecorder` does the same for a call priced as a
cost event (an image, speech). The provider's own rules (:class:`ProviderRules`: its
provider id, its error codes, whether a failure may have been billed, how output text is
counted) are all that differs between the OpenAI and the Gemini instrumentation. Recording
never raises into the caller.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from costguard.sdk._client import TelemetryClient
from costguard.sdk._context import UserContext, current_user_context
from costguard.sdk._events import CostEvent, LlmCall, record_llm_event, track_cost_events
from costguard.sdk._insight import UNKNOWN_MODEL, active_insight, insight_context_type

log = logging.getLogger(__name__)

AI_API_CALL = "ai_api_call"


@dataclass(frozen=True)
class Usage:
    """Token counts of one call, GenAI-style (cached within input; reasoning and generated
    images within output)."""

    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    output_image_tokens: int = 0


NO_USAGE = Usage(0, 0, 0, 0)


@dataclass(frozen=True)
class ProviderRules:
    """How one provider's calls are recorded."""

    provider: str  # genai-prices' provider id: "openai", "google"
    label: str  # what a call is called in logs: "an OpenAI call"
    error_code: Callable[[BaseException], str]
    # Whether the provider may have billed a call that raised this (an HTTP error status
    # means it refused; a request that never left cannot be billed).
    may_be_billed: Callable[[BaseException], bool]
    # The tokens of the text the caller received, by model: the output of an estimate.
    count_output: Callable[[str, str], int]


def guarded(hook: Callable[[], None], what: str = "a call") -> None:
    """Run one recording step; a failure is logged, never raised into the caller."""
    try:
        hook()
    except Exception:  # telemetry never breaks the caller
        log.exception("could not record %s", what)


def pinned_context(user_ctx: UserContext | None) -> UserContext:
    """Who a call is for, pinned when it starts: "nobody" stays nobody even if the call is
    recorded in another context."""
    return user_ctx or current_user_context() or UserContext("", "")


class CallRecorder:
    """Measures one LLM call from its start and records exactly one LLM event for it.

    Attribution (user context, insight) is captured when the call starts, so a stream
    consumed later or in another task is still charged to whoever made the call. When the
    usage is unknown, the tokens are estimated: ``estimate_input(model)`` for the input,
    the rules' ``count_output`` of the text the caller received for the output.
    """

    def __init__(
        self,
        *,
        rules: ProviderRules,
        operation: str,
        requested_model: object,
        telemetry: TelemetryClient | None,
        user_ctx: UserContext | None,
        context_type: str = "",
        estimate_input: Callable[[str], int] | None = None,
    ) -> None:
        self._rules = rules
        self._operation = operation
        self._context_type = context_type
        self._requested_model = requested_model if isinstance(requested_model, str) else ""
        self._telemetry = telemetry
        self._user_ctx = pinned_context(user_ctx)
        self._insight = active_insight()
        self._estimate_input = estimate_input
        self._created_at = datetime.now(UTC)
        self._started = time.perf_counter()
        self.recorded = False

    def succeeded(
        self, *, model: str | None, usage: Usage | None, failure: str = "", received: str = ""
    ) -> None:
        """The call returned (a stream: ended, or was left); ``failure`` marks a reported
        failure; ``received`` is the text the caller got, for an estimate."""
        self._record(model, usage, failure, received, billed=True)

    def failed(
        self,
        exc: BaseException,
        *,
        model: str | None = None,
        received: str = "",
        billed: bool | None = None,
    ) -> None:
        """The call raised ``exc``; ``billed`` overrides the rules' judgement of whether the
        provider may have billed it (the caller knows more, e.g. that it was never sent)."""
        if billed is None:
            billed = self._rules.may_be_billed(exc)
        self._record(model, None, self._rules.error_code(exc), received, billed=billed)

    def _record(
        self, model: str | None, usage: Usage | None, failure: str, received: str, *, billed: bool
    ) -> None:
        if self.recorded:
            return
        self.recorded = True
        try:
            name = model or self._requested_model or UNKNOWN_MODEL
            counts = usage
            if counts is None:
                counts = self._estimate(name, received) if billed else NO_USAGE
            self._emit(name, counts, failure, reported=usage is not None)
        except Exception:  # telemetry never breaks the caller
            log.exception("could not record %s", self._rules.label)

    def _estimate(self, model: str, received: str) -> Usage:
        """Tokens counted locally; at least one input token, so never a silent $0."""
        inputs = 0
        if self._estimate_input is not None:
            try:
                inputs = self._estimate_input(model)
            except Exception:
                log.warning("could not count a request's tokens", exc_info=True)
        outputs = self._rules.count_output(model, received) if received else 0
        return Usage(max(inputs, 1), 0, outputs, 0)

    def _emit(self, model: str, counts: Usage, failure: str, *, reported: bool) -> None:
        call = LlmCall(
            llm_model=model,
            provider=self._rules.provider,
            operation=self._operation,
            input_tokens=counts.input_tokens,
            # Clamped so that a provider's odd report cannot get the event rejected.
            cached_input_tokens=min(counts.cached_input_tokens, counts.input_tokens),
            output_tokens=counts.output_tokens,
            reasoning_tokens=min(counts.reasoning_tokens, counts.output_tokens),
            output_image_tokens=min(counts.output_image_tokens, counts.output_tokens),
            duration_ms=int((time.perf_counter() - self._started) * 1000),
            success=not failure,
            error_code=failure,
            usage_reported=reported,
            insight_key=self._insight.key if self._insight else "",
            context_type=self._context_type or self._insight_context_type(),
            user_ctx=self._user_ctx,
            created_at=self._created_at,
        )
        record_llm_event(call, client=self._telemetry)
        if self._insight is not None and not failure:
            self._insight.note_call(model, self._operation, self._rules.provider)

    def _insight_context_type(self) -> str:
        # Outside an insight, "" lets the event take the user context's, else the default.
        return insight_context_type(self._user_ctx) if self._insight else ""


class CostRecorder:
    """Records one ``ai_api_call`` cost event for a call, attributed to whoever started it."""

    def __init__(
        self,
        *,
        service: str,
        unit: str,
        telemetry: TelemetryClient | None,
        user_ctx: UserContext | None,
        label: str = "a call",
    ) -> None:
        self._service, self._unit = service, unit
        self._telemetry = telemetry
        self._user_ctx = pinned_context(user_ctx)
        self._label = label
        self._created_at = datetime.now(UTC)
        self._started = time.perf_counter()
        self.recorded = False

    def record(self, quantity: float, metadata: Mapping[str, Any]) -> None:
        if self.recorded:
            return
        self.recorded = True
        try:
            meta = {**metadata, "duration_ms": int((time.perf_counter() - self._started) * 1000)}
            event = CostEvent(
                AI_API_CALL,
                self._service,
                quantity,
                self._unit,
                meta,
                user_ctx=self._user_ctx,
                created_at=self._created_at,
            )
            track_cost_events([event], client=self._telemetry)
        except Exception:  # telemetry never breaks the caller
            log.exception("could not record %s", self._label)
