"""Record what S3, SES, SQS and Lambda calls cost, through botocore's event hooks.

Works with boto3 (``costguard-sdk[boto3]``) and with aiobotocore (``costguard-sdk[aws]``):
either one is enough. That is why this module is imported on its own (``from
costguard.sdk.aws import instrument_aws``) rather than from ``costguard.sdk``.

botocore gives ``after-call`` handlers the reply but not the request, so
``before-parameter-build`` stashes the parameters (and an upload's size, before the body is
read) in the request context, ``before-call`` stamps when the request leaves, and
``after-call`` turns a successful reply (HTTP status below 300) into cost events; a failed
call records nothing. Every handler catches and logs its own errors: telemetry never breaks
the AWS call. Attribution comes from the current ``UserContext``.

The two kinds of client share every handler and every recorder but one: ``after-call`` is
a plain function on a boto3/botocore client and a coroutine on an aiobotocore client (whose
emitter awaits it), because the one input that may need a call of its own, the memory size
of a Lambda function nobody has described yet, is read with a ``GetFunctionConfiguration``
made through that same client, blocking or awaited. Everything else is the same code.

A Lambda ``Invoke`` is recorded with the id ``invocation_event_id(RequestId)``, the id the
invoked function's ``@metered`` handler (``costguard.sdk.aws_lambda``) records its own
report with, so one invocation reported by both sides is stored once.
"""

from __future__ import annotations

import base64
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from itertools import accumulate
from typing import TYPE_CHECKING, Any, cast

try:
    from botocore.client import BaseClient
    from botocore.session import Session as BotocoreSession
    from botocore.utils import determine_content_length
except ImportError as missing:  # neither extra is installed
    raise ImportError(
        "costguard.sdk.aws needs boto3 or aiobotocore: install costguard-sdk[boto3] or"
        " costguard-sdk[aws]"
    ) from missing

from costguard.sdk._client import TelemetryClient
from costguard.sdk._events import CostEvent, track_cost_events
from costguard.sdk.aws_lambda import invocation_event_id

# Either library may be missing: the other one's objects are told apart by these.
try:
    from aiobotocore.client import AioBaseClient
except ImportError:
    _ASYNC_CLIENTS: tuple[type, ...] = ()
else:
    _ASYNC_CLIENTS = (AioBaseClient,)
try:
    from boto3.session import Session as Boto3Session
except ImportError:
    _BOTO3_SESSIONS: tuple[type, ...] = ()
else:
    _BOTO3_SESSIONS = (Boto3Session,)

if TYPE_CHECKING:
    from botocore.awsrequest import AWSResponse
    from botocore.model import OperationModel
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_lambda.type_defs import GetFunctionConfigurationRequestTypeDef
    from types_aiobotocore_lambda import LambdaClient as AioLambdaClient

__all__ = ["instrument_aws"]

log = logging.getLogger(__name__)

_STASH = "costguard_aws"
_MIB = 1024 * 1024
_LAMBDA_MIN_MEMORY_MB = 128  # Lambda's smallest size: a lower bound, never a silent $0
_METADATA_KEYS_CHARS = 8_000  # the telemetry service refuses metadata over 16 KiB
# Invoke, and the replies that tell a function's memory size (the other services' operations
# are the keys of _RECORDERS, at the end of this module).
_LAMBDA_OPERATIONS = (
    "Invoke",
    "CreateFunction",
    "GetFunction",
    "GetFunctionConfiguration",
    "UpdateFunctionConfiguration",
)
_SERVICES = ("s3", "ses", "sesv2", "sqs", "lambda")
_REPORT = re.compile(r"Billed Duration:\s*(\d+)\s*ms.*?Memory Size:\s*(\d+)\s*MB", re.DOTALL)
# Set while this module makes its own GetFunctionConfiguration call, so that call is not
# itself recorded or looked into.
_looking_up: ContextVar[bool] = ContextVar("costguard_aws_looking_up", default=False)
# (region, function name or ARN, qualifier): where a Lambda memory size applies.
_FunctionKey = tuple[str, str, str]


def instrument_aws(
    target: BotocoreSession | Boto3Session | BaseClient,
    *,
    telemetry: TelemetryClient | None = None,
) -> None:
    """Record the cost of S3, SES, SQS and Lambda calls made through ``target``.

    ``target`` is a session, a boto3 ``Session``, a botocore ``Session`` or an aiobotocore
    ``AioSession`` (every S3, SES, SESv2, SQS and Lambda client it creates afterwards is
    instrumented), or an existing client of any of them. Events go to ``telemetry``, or to
    the default client when it is ``None``; a boto3 client is as safe to use from threads
    as the telemetry client is (see docs/sdk-delivery.md). Instrumenting the same session
    or client twice is harmless: the first registration wins. A successful call records,
    in the names of docs/cost-events.md:

    - S3 PutObject, GetObject, DeleteObject, DeleteObjects: ``s3_operation`` /
      ``s3_put|s3_get|s3_delete``, 1 of ``requests``, with ``operation``, ``bucket``,
      ``s3_key``, ``size_bytes``, ``file_size_mb`` (MiB) and ``content_type``; a bulk delete
      is one request, its ``deleted_count`` and ``keys`` only those S3 reports deleted.
    - SES v1 and v2 sends: ``ses_email`` / ``ses``, one of ``emails`` per recipient accepted
      (bulk sends count only the destinations whose status is Success), with ``operation``,
      ``template``, ``batch_size`` (recipients addressed), ``success_count`` and
      ``failed_count``.
    - SQS SendMessage(Batch): ``sqs_message`` / ``sqs``, one of ``messages`` per message
      accepted, with ``operation``, ``queue_url``, ``message_count`` and ``body_bytes`` (the
      accepted messages' bodies).
    - Lambda Invoke: ``lambda_invocation`` / ``lambda``, 1 of ``requests``, with
      ``function_name``, ``duration_seconds`` (billed duration: tail log, else the measured
      call) and ``memory_mb`` (tail log, else the function's configuration, remembered from
      Create/Get/UpdateFunctionConfiguration replies or looked up once per function); an
      ``Event`` invocation runs later, out of sight: ``duration_seconds`` 0. Its event id
      derives from the reply's RequestId (``aws_request_id``), shared with the function's
      own ``@metered`` report: the first of the two to arrive is stored.
    """
    instrumentation = _Instrumentation(telemetry)
    if isinstance(target, BotocoreSession):  # an AioSession is one too
        register = target.register
    elif isinstance(target, _BOTO3_SESSIONS):
        register = cast("Boto3Session", target).events.register
    else:
        instrumentation.attach(cast("BaseClient", target))
        return
    for service in _SERVICES:
        register(
            f"creating-client-class.{service}",
            instrumentation.add_client_base,
            unique_id=f"costguard.aws.creating-client-class.{service}",
        )


@dataclass
class _Call:
    """One AWS call as the handlers see it: what was asked, what came back."""

    service: str
    operation: str
    params: Mapping[str, Any] = field(default_factory=dict)
    parsed: Mapping[str, Any] = field(default_factory=dict)
    upload_bytes: int | None = None
    started: float = field(default_factory=time.perf_counter)
    answered: float = 0.0

    def event(
        self,
        event_type: str,
        service: str,
        quantity: float,
        unit: str,
        metadata: dict[str, Any],
        *,
        event_id: str = "",
    ) -> CostEvent:
        return CostEvent(
            event_type,
            service,
            quantity,
            unit,
            {"operation": self.operation, **metadata},
            event_id=event_id,
        )


class _Instrumentation:
    """One ``instrument_aws`` call: where events go, and Lambda memory sizes seen so far."""

    def __init__(self, telemetry: TelemetryClient | None) -> None:
        self.telemetry = telemetry
        # (region, function name or ARN, qualifier) -> MB, or None when the lookup failed;
        # a failure is remembered too, so a missing permission costs one call per function.
        self.memory_mb: dict[_FunctionKey, int | None] = {}

    def add_client_base(self, **kwargs: Any) -> None:
        # A session's handlers never learn their client, and the Lambda memory lookup needs
        # one; so each client the session creates instruments itself once built (boto3 adds
        # its resource methods through this same creating-client-class event). A subclass of
        # BaseClient fits in front of AioBaseClient as well as in front of BaseClient.
        base_classes: list[type] = kwargs["base_classes"]
        instrumentation = self

        class InstrumentedClient(BaseClient):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                instrumentation.attach(self)

        base_classes.insert(0, InstrumentedClient)

    def attach(self, client: BaseClient) -> None:
        service = client.meta.service_model.service_id.hyphenize()
        kind = _AsyncHooks if isinstance(client, _ASYNC_CLIENTS) else _SyncHooks
        hooks = kind(self, client, service)
        handlers: tuple[tuple[str, Callable[..., Any]], ...] = (
            ("before-parameter-build", hooks.before_parameter_build),
            ("before-call", hooks.before_call),
            ("after-call", hooks.after_call),
        )
        operations = [op for svc, op in _RECORDERS if svc == service]
        for operation in _LAMBDA_OPERATIONS if service == "lambda" else operations:
            for stage, handler in handlers:
                event_name = f"{stage}.{service}.{operation}"
                client.meta.events.register(
                    event_name, handler, unique_id=f"costguard.aws.{event_name}"
                )

    def remember_memory(self, region: str, call: _Call) -> None:
        config = call.parsed.get("Configuration", call.parsed)  # GetFunction nests it
        memory = config.get("MemorySize")
        if not isinstance(memory, int):
            return
        qualifier = call.params.get("Qualifier", "")
        names = {call.params.get("FunctionName", "")}
        if not qualifier:
            names |= {config.get("FunctionName", ""), config.get("FunctionArn", "")}
        for name in names - {""}:
            self.memory_mb[(region, name, qualifier)] = memory


class _ClientHooks:
    """The handlers of one client; ``after_call`` is its subclasses' (sync or async)."""

    def __init__(self, instrumentation: _Instrumentation, client: BaseClient, service: str):
        self._instrumentation = instrumentation
        self._client = client
        self._service = service

    def before_parameter_build(
        self, params: Mapping[str, Any], model: OperationModel, context: dict[str, Any], **_: Any
    ) -> None:
        if _looking_up.get():
            return
        try:
            call = _Call(self._service, model.name, params)
            if model.name == "PutObject":  # measure now: the body is read when it is sent
                call.upload_bytes = _upload_bytes(params)
            context[_STASH] = call
        except Exception:
            log.exception("could not prepare the cost record of %s", model.name)

    def before_call(self, context: dict[str, Any], **_: Any) -> None:
        call = context.get(_STASH)
        if isinstance(call, _Call):
            call.started = time.perf_counter()

    def _answered(
        self,
        http_response: AWSResponse,
        parsed: Mapping[str, Any],
        model: OperationModel,
        context: dict[str, Any],
    ) -> tuple[_Call, str] | None:
        """The call to record and its region; None when nothing is to be recorded."""
        if _looking_up.get() or http_response.status_code >= 300:
            return None
        call = context.get(_STASH)
        if not isinstance(call, _Call):
            call = _Call(self._service, model.name)
        call.parsed = parsed
        call.answered = time.perf_counter()  # before any lookup: not part of the duration
        return call, context.get("client_region") or ""

    def _to_look_up(self, call: _Call, region: str) -> _FunctionKey | None:
        """The function whose memory size this Invoke needs and nobody has told yet."""
        if (call.service, call.operation) != ("lambda", "Invoke"):
            return None
        if call.params.get("InvocationType", "RequestResponse") != "RequestResponse":
            return None
        if _from_tail_log(call.parsed.get("LogResult"))[1]:
            return None
        key = (region, call.params.get("FunctionName", ""), call.params.get("Qualifier", ""))
        return None if key in self._instrumentation.memory_mb else key

    def _record(self, call: _Call, region: str) -> None:
        events = self._events(call, region)
        if events:
            track_cost_events(events, client=self._instrumentation.telemetry)

    def _events(self, call: _Call, region: str) -> list[CostEvent]:
        if call.service == "lambda":
            if call.operation == "Invoke":
                return self._invoke(call, region)
            self._instrumentation.remember_memory(region, call)
            return []
        return _RECORDERS[(call.service, call.operation)](call)

    def _invoke(self, call: _Call, region: str) -> list[CostEvent]:
        invocation_type = call.params.get("InvocationType", "RequestResponse")
        name, qualifier = call.params.get("FunctionName", ""), call.params.get("Qualifier", "")
        request_id = call.parsed.get("ResponseMetadata", {}).get("RequestId", "")
        metadata: dict[str, Any] = {
            "function_name": name,
            "qualifier": qualifier,
            "invocation_type": invocation_type,
            "status_code": call.parsed.get("StatusCode", 0),
            "executed_version": call.parsed.get("ExecutedVersion", ""),
            "function_error": call.parsed.get("FunctionError", ""),  # still billed
        }
        if request_id:
            metadata["aws_request_id"] = request_id
        event_id = invocation_event_id(request_id) if request_id else ""
        if invocation_type == "DryRun":
            return []
        if invocation_type == "Event":  # runs later: its duration is not the caller's to see
            metadata |= {"duration_seconds": 0, "duration_source": "not_seen"}
            return [
                call.event(
                    "lambda_invocation", "lambda", 1, "requests", metadata, event_id=event_id
                )
            ]
        billed_ms, memory_mb = _from_tail_log(call.parsed.get("LogResult"))
        metadata["duration_source"] = "log" if billed_ms else "measured"
        if not billed_ms:
            billed_ms = max(1, math.ceil((call.answered - call.started) * 1000))
        metadata["memory_source"] = "log"
        if not memory_mb:
            known = self._instrumentation.memory_mb.get((region, name, qualifier))
            memory_mb = known or _LAMBDA_MIN_MEMORY_MB
            metadata["memory_source"] = "configuration" if known else "assumed_minimum"
        metadata |= {
            "billed_duration_ms": billed_ms,
            "duration_seconds": billed_ms / 1000,
            "memory_mb": memory_mb,
        }
        return [
            call.event("lambda_invocation", "lambda", 1, "requests", metadata, event_id=event_id)
        ]


class _SyncHooks(_ClientHooks):
    """A boto3/botocore client's: its emitter calls handlers and ignores what they return."""

    def after_call(
        self,
        http_response: AWSResponse,
        parsed: Mapping[str, Any],
        model: OperationModel,
        context: dict[str, Any],
        **_: Any,
    ) -> None:
        try:
            answered = self._answered(http_response, parsed, model, context)
            if answered is None:
                return
            call, region = answered
            key = self._to_look_up(call, region)
            if key is not None:
                self._instrumentation.memory_mb[key] = self._fetch_memory_mb(key)
            self._record(call, region)
        except Exception:
            log.exception("could not record the cost of %s", model.name)

    def _fetch_memory_mb(self, key: _FunctionKey) -> int | None:
        token = _looking_up.set(True)
        try:
            client = cast("LambdaClient", self._client)
            return client.get_function_configuration(**_lookup(key)).get("MemorySize")
        except Exception:
            log.warning("could not read the memory size of Lambda %s", key[1], exc_info=True)
            return None
        finally:
            _looking_up.reset(token)


class _AsyncHooks(_ClientHooks):
    """An aiobotocore client's: its emitter awaits a handler that returns a coroutine."""

    async def after_call(
        self,
        http_response: AWSResponse,
        parsed: Mapping[str, Any],
        model: OperationModel,
        context: dict[str, Any],
        **_: Any,
    ) -> None:
        try:
            answered = self._answered(http_response, parsed, model, context)
            if answered is None:
                return
            call, region = answered
            key = self._to_look_up(call, region)
            if key is not None:
                self._instrumentation.memory_mb[key] = await self._fetch_memory_mb(key)
            self._record(call, region)
        except Exception:
            log.exception("could not record the cost of %s", model.name)

    async def _fetch_memory_mb(self, key: _FunctionKey) -> int | None:
        token = _looking_up.set(True)
        try:
            client = cast("AioLambdaClient", self._client)
            return (await client.get_function_configuration(**_lookup(key))).get("MemorySize")
        except Exception:
            log.warning("could not read the memory size of Lambda %s", key[1], exc_info=True)
            return None
        finally:
            _looking_up.reset(token)


def _lookup(key: _FunctionKey) -> GetFunctionConfigurationRequestTypeDef:
    _, name, qualifier = key
    request: GetFunctionConfigurationRequestTypeDef = {"FunctionName": name}
    if qualifier:
        request["Qualifier"] = qualifier
    return request


def _upload_bytes(params: Mapping[str, Any]) -> int | None:
    if isinstance(params.get("ContentLength"), int):
        return int(params["ContentLength"])
    body = params.get("Body")
    return len(body.encode()) if isinstance(body, str) else determine_content_length(body)


def _from_tail_log(log_result: str | None) -> tuple[int, int]:
    """Billed ms and memory MB from the REPORT line of a base64 tail log; 0 when absent."""
    if not log_result:
        return 0, 0
    found = _REPORT.search(base64.b64decode(log_result).decode("utf-8", "replace"))
    return (int(found[1]), int(found[2])) if found else (0, 0)


def _s3_object(call: _Call, size: int, content_type: str) -> dict[str, Any]:
    return {
        "bucket": call.params.get("Bucket", ""),
        "s3_key": call.params.get("Key", ""),
        "size_bytes": size,
        "file_size_mb": size / _MIB,
        "content_type": content_type,
    }


def _s3_put(call: _Call) -> list[CostEvent]:
    metadata = _s3_object(call, call.upload_bytes or 0, call.params.get("ContentType", ""))
    metadata["storage_class"] = call.params.get("StorageClass", "STANDARD")
    metadata["size_known"] = call.upload_bytes is not None
    return [call.event("s3_operation", "s3_put", 1, "requests", metadata)]


def _s3_get(call: _Call) -> list[CostEvent]:
    size = int(call.parsed.get("ContentLength", 0))
    metadata = _s3_object(call, size, call.parsed.get("ContentType", ""))
    return [call.event("s3_operation", "s3_get", 1, "requests", metadata)]


def _s3_delete(call: _Call) -> list[CostEvent]:
    metadata = {"bucket": call.params.get("Bucket", ""), "s3_key": call.params.get("Key", "")}
    return [call.event("s3_operation", "s3_delete", 1, "requests", metadata)]


def _s3_delete_many(call: _Call) -> list[CostEvent]:
    """One request, however many keys: S3 bills a DeleteObjects call as one request."""
    errors = call.parsed.get("Errors", [])
    deleted = [item.get("Key", "") for item in call.parsed.get("Deleted", [])]
    delete = call.params.get("Delete", {})
    if delete.get("Quiet"):  # a quiet reply lists only the failures
        failed = {(e.get("Key"), e.get("VersionId")) for e in errors}
        asked = delete.get("Objects", [])
        deleted = [
            o["Key"]
            for o in asked
            if not {(o["Key"], o.get("VersionId")), (o["Key"], None)} & failed
        ]
    sizes = accumulate(len(key) for key in deleted)
    keys = [key for key, chars in zip(deleted, sizes, strict=True) if chars <= _METADATA_KEYS_CHARS]
    metadata = {
        "bucket": call.params.get("Bucket", ""),
        "deleted_count": len(deleted),
        "error_count": len(errors),
        "keys": keys,
        "keys_truncated": len(keys) < len(deleted),
    }
    return [call.event("s3_operation", "s3_delete", 1, "requests", metadata)]


def _addresses(destination: Mapping[str, Any] | None) -> int:
    fields = ("ToAddresses", "CcAddresses", "BccAddresses")
    return sum(len((destination or {}).get(name, [])) for name in fields)


def _raw_addresses(data: bytes | str) -> int:
    raw = data.encode() if isinstance(data, str) else data
    headers = BytesHeaderParser().parsebytes(raw)
    values = [v for name in ("To", "Cc", "Bcc") for v in headers.get_all(name, [])]
    return sum(1 for _, address in getaddresses(values) if address)


def _emails(call: _Call, addressed: int, sent: int, extra: Mapping[str, Any]) -> list[CostEvent]:
    """One event of the ``sent`` recipients out of the ``addressed``, when any was sent."""
    metadata = {
        "api": call.service,
        **extra,
        "batch_size": addressed,
        "success_count": sent,
        "failed_count": addressed - sent,
    }
    return [call.event("ses_email", "ses", sent, "emails", metadata)] if sent else []


def _ses_send(call: _Call) -> list[CostEvent]:
    params = call.params
    if call.operation == "SendRawEmail":
        recipients = len(params.get("Destinations", [])) or _raw_addresses(
            params.get("RawMessage", {}).get("Data", b"")
        )
    elif "Destination" not in params and "Raw" in params.get("Content", {}):  # SESv2 raw
        recipients = _raw_addresses(params["Content"]["Raw"].get("Data", b""))
    else:
        recipients = _addresses(params.get("Destination"))
    template = params.get("Template") or params.get("Content", {}).get("Template", {})
    name = template if isinstance(template, str) else template.get("TemplateName", "")
    extra = {"message_id": call.parsed.get("MessageId", ""), "template": name}
    return _emails(call, recipients, recipients, extra)  # SES takes all or refuses the call


def _accepted(entry: Mapping[str, Any], success: str) -> bool:
    # SES-compatible endpoints such as moto answer a MessageId without a Status; only an
    # accepted message gets a MessageId, so that counts as accepted too.
    status = entry.get("Status")
    return status == success or (status is None and bool(entry.get("MessageId")))


def _ses_bulk(call: _Call) -> list[CostEvent]:
    if call.service == "ses":
        entries, results = call.params.get("Destinations", []), call.parsed.get("Status", [])
        success, template = "Success", call.params.get("Template", "")
    else:
        entries = call.params.get("BulkEmailEntries", [])
        results, success = call.parsed.get("BulkEmailEntryResults", []), "SUCCESS"
        default = call.params.get("DefaultContent", {}).get("Template", {})
        template = default.get("TemplateName", "")
    sent = [e for e, r in zip(entries, results, strict=False) if _accepted(r, success)]
    recipients = sum(_addresses(entry.get("Destination")) for entry in sent)
    addressed = sum(_addresses(entry.get("Destination")) for entry in entries)
    extra = {"destinations": len(entries), "destinations_failed": len(entries) - len(sent)}
    return _emails(call, addressed, recipients, {**extra, "template": template})


def _sqs_send(call: _Call) -> list[CostEvent]:
    metadata = {
        "queue_url": call.params.get("QueueUrl", ""),
        "message_count": 1,
        "body_bytes": len(call.params.get("MessageBody", "").encode()),
        "message_id": call.parsed.get("MessageId", ""),
    }
    return [call.event("sqs_message", "sqs", 1, "messages", metadata)]


def _sqs_send_batch(call: _Call) -> list[CostEvent]:
    sent = {entry.get("Id") for entry in call.parsed.get("Successful", [])}
    bodies = [
        e.get("MessageBody", "") for e in call.params.get("Entries", []) if e.get("Id") in sent
    ]
    failed = call.parsed.get("Failed", [])
    metadata = {
        "queue_url": call.params.get("QueueUrl", ""),
        "message_count": len(sent),
        "body_bytes": sum(len(body.encode()) for body in bodies),
        "failed": len(failed),
        "failure_codes": sorted({entry.get("Code", "") for entry in failed}),
    }
    return [call.event("sqs_message", "sqs", len(sent), "messages", metadata)] if sent else []


_RECORDERS: dict[tuple[str, str], Callable[[_Call], list[CostEvent]]] = {
    ("s3", "PutObject"): _s3_put,
    ("s3", "GetObject"): _s3_get,
    ("s3", "DeleteObject"): _s3_delete,
    ("s3", "DeleteObjects"): _s3_delete_many,
    ("ses", "SendEmail"): _ses_send,
    ("ses", "SendRawEmail"): _ses_send,
    ("ses", "SendTemplatedEmail"): _ses_send,
    ("ses", "SendBulkTemplatedEmail"): _ses_bulk,
    ("sesv2", "SendEmail"): _ses_send,
    ("sesv2", "SendBulkEmail"): _ses_bulk,
    ("sqs", "SendMessage"): _sqs_send,
    ("sqs", "SendMessageBatch"): _sqs_send_batch,
}
