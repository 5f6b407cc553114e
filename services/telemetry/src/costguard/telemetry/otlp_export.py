"""The OTLP TraceService/Export adapter: GenAI spans through the SDK's ingest path."""

from __future__ import annotations

import grpc
from grpc import aio
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from costguard.telemetry import metrics
from costguard.telemetry.ingest import Ingestor
from costguard.telemetry.otlp import Defaults, attributes, llm_event
from costguard.telemetry.servicer import Context, stored
from costguard.v1 import telemetry_pb2

SERVICE_NAME = trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"].full_name


def events_of(
    request: trace_service_pb2.ExportTraceServiceRequest, defaults: Defaults
) -> tuple[list[telemetry_pb2.TelemetryEvent], list[str], int]:
    """The request's GenAI spans as events, their span ids (hex), and how many other
    spans the request held."""
    events: list[telemetry_pb2.TelemetryEvent] = []
    span_ids: list[str] = []
    ignored = 0
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                event = llm_event(span, resource, defaults)
                if event is None:
                    ignored += 1
                else:
                    events.append(telemetry_pb2.TelemetryEvent(llm=event))
                    span_ids.append(span.span_id.hex())
    return events, span_ids, ignored


class TraceServicer:
    def __init__(self, ingestor: Ingestor, defaults: Defaults) -> None:
        self._ingestor = ingestor
        self._defaults = defaults

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Context
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        events, span_ids, ignored = events_of(request, self._defaults)
        metrics.OTLP_SPANS.labels("ignored").inc(ignored)
        reply = trace_service_pb2.ExportTraceServiceResponse()
        if events:
            result = await stored(self._ingestor.store(events), context)
            metrics.OTLP_SPANS.labels("stored").inc(result.accepted)
            metrics.OTLP_SPANS.labels("duplicate").inc(result.duplicate)
            metrics.OTLP_SPANS.labels("rejected").inc(len(result.rejections))
            if result.rejections:
                reply.partial_success.rejected_spans = len(result.rejections)
                reply.partial_success.error_message = "; ".join(
                    f"span {span_ids[r.index]}: {r.field}: {r.reason}" for r in result.rejections
                )
                return reply
        if ignored:
            reply.partial_success.error_message = f"{ignored} non-GenAI spans ignored"
        return reply


def add_trace_service(servicer: TraceServicer, server: aio.Server) -> None:
    """Register ``TraceService/Export`` (by hand: opentelemetry-proto's generated gRPC
    module is untyped)."""
    handler = grpc.unary_unary_rpc_method_handler(
        servicer.Export,
        request_deserializer=trace_service_pb2.ExportTraceServiceRequest.FromString,
        response_serializer=trace_service_pb2.ExportTraceServiceResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(SERVICE_NAME, {"Export": handler})]
    )
