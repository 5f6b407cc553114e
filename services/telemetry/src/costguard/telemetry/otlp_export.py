"""OTLP ``TraceService/Export``: GenAI spans through the SDK's ingest path.

:func:`export_spans` is the one place a request becomes a reply; the gRPC adapter here and
the HTTP one (``otlp_http``) only decode, call it and encode, so both fill
``partial_success`` and count ``costguard_otlp_spans`` alike.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal

import grpc
from grpc import aio
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from costguard.telemetry import metrics
from costguard.telemetry.event_tables import Origin
from costguard.telemetry.ingest import Ingestor
from costguard.telemetry.otlp import Defaults, attributes, genai_call
from costguard.telemetry.servicer import Context, stored
from costguard.v1 import telemetry_pb2

log = logging.getLogger(__name__)

SERVICE_NAME = trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"].full_name

Request = trace_service_pb2.ExportTraceServiceRequest
Reply = trace_service_pb2.ExportTraceServiceResponse


@dataclass
class SpanBatch:
    """A request's GenAI spans as events, with their span ids (hex), the costs they
    reported (by event id), why any reported cost was ignored, and how many other spans
    the request held."""

    events: list[telemetry_pb2.TelemetryEvent] = field(default_factory=list)
    span_ids: list[str] = field(default_factory=list)
    reported_costs: dict[str, Decimal] = field(default_factory=dict)
    cost_problems: list[str] = field(default_factory=list)
    ignored: int = 0


def spans_of(request: Request, defaults: Defaults) -> SpanBatch:
    batch = SpanBatch()
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                call = genai_call(span, resource, defaults)
                if call is None:
                    batch.ignored += 1
                    continue
                batch.events.append(telemetry_pb2.TelemetryEvent(llm=call.event))
                batch.span_ids.append(span.span_id.hex())
                if call.reported_cost is not None:
                    batch.reported_costs[call.event.event_id] = call.reported_cost
                if call.cost_problem:
                    batch.cost_problems.append(f"span {span.span_id.hex()}: {call.cost_problem}")
    return batch


async def export_spans(ingestor: Ingestor, defaults: Defaults, request: Request) -> Reply:
    """Store the request's GenAI spans and say what became of them.

    Raises what ``Ingestor.store`` raises: ``servicer.DATABASE_UNAVAILABLE`` is for the
    transport to turn into "retry later" (gRPC UNAVAILABLE, HTTP 503).
    """
    batch = spans_of(request, defaults)
    metrics.OTLP_SPANS.labels("ignored").inc(batch.ignored)
    if batch.cost_problems:
        metrics.OTLP_REPORTED_COSTS_IGNORED.inc(len(batch.cost_problems))
        log.warning(
            "reported costs ignored",
            extra={"spans": len(batch.cost_problems), "first": batch.cost_problems[0]},
        )
    reply = Reply()
    if batch.events:
        result = await ingestor.store(batch.events, origin=Origin("otlp", batch.reported_costs))
        metrics.OTLP_SPANS.labels("stored").inc(result.accepted)
        metrics.OTLP_SPANS.labels("duplicate").inc(result.duplicate)
        metrics.OTLP_SPANS.labels("rejected").inc(len(result.rejections))
        if result.rejections:
            reply.partial_success.rejected_spans = len(result.rejections)
            reply.partial_success.error_message = "; ".join(
                f"span {batch.span_ids[r.index]}: {r.field}: {r.reason}" for r in result.rejections
            )
            return reply
    if batch.ignored:
        reply.partial_success.error_message = f"{batch.ignored} non-GenAI spans ignored"
    return reply


class TraceServicer:
    def __init__(self, ingestor: Ingestor, defaults: Defaults) -> None:
        self._ingestor = ingestor
        self._defaults = defaults

    async def Export(self, request: Request, context: Context) -> Reply:
        return await stored(export_spans(self._ingestor, self._defaults, request), context)


def add_trace_service(servicer: TraceServicer, server: aio.Server) -> None:
    """Register ``TraceService/Export`` (by hand: opentelemetry-proto's generated gRPC
    module is untyped)."""
    handler = grpc.unary_unary_rpc_method_handler(
        servicer.Export,
        request_deserializer=Request.FromString,
        response_serializer=Reply.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(SERVICE_NAME, {"Export": handler})]
    )
