"""What the AWS instrumentation must record, shared by the aiobotocore and the boto3 tests.

Both drive real clients against moto (or, where moto cannot produce a reply, a stubbed
reply shaped like AWS's) with the inputs here, then hand what the telemetry service stored
to the checks here: one set of expectations for the two kinds of client.
"""

from __future__ import annotations

import base64
import io
import zipfile
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from botocore.client import BaseClient
from mypy_boto3_ses.type_defs import (
    BulkEmailDestinationTypeDef,
    DestinationTypeDef,
    MessageTypeDef,
    TemplateTypeDef,
)
from mypy_boto3_sesv2.type_defs import BulkEmailEntryTypeDef
from mypy_boto3_sesv2.type_defs import DestinationTypeDef as DestinationV2TypeDef

from costguard.common.money import round_usd
from costguard.common.pricing import AwsPrices, SeedPrices
from costguard.rollup.rollup import Pricing, rollup_costs_for_date
from costguard.sdk import TelemetryClient, UserContext
from costguard.v1 import telemetry_pb2

SENDER = "sender@example.com"
MIB = 1_048_576
Rows = list[dict[str, Any]]


async def recorded(telemetry: TelemetryClient, db: asyncpg.Pool) -> Rows:
    """Every cost event the telemetry service stored, in the order they were recorded."""
    assert await telemetry.flush()
    rows = await db.fetch(
        "SELECT event_type, service, quantity, unit, metadata, user_id, tier, episode_id,"
        " podcast_id FROM cost_events ORDER BY id"
    )
    return [dict(row) for row in rows]


def by_type(rows: Rows, event_type: str) -> Rows:
    return [row for row in rows if row["event_type"] == event_type]


def summary(rows: Rows) -> list[tuple[str, str, Decimal, str]]:
    return [(r["event_type"], r["service"], r["quantity"], r["unit"]) for r in rows]


def calls_seen(client: BaseClient, operation: str) -> list[str]:
    """Every Lambda ``operation`` call made through ``client`` from now on, by anyone."""
    seen: list[str] = []

    def saw(**_: Any) -> None:
        seen.append(operation)

    client.meta.events.register(f"after-call.lambda.{operation}", saw)
    return seen


# S3: two PUTs (text, then a 1.5 MiB stream read only when sent), a GET, a DELETE.
NOTES_TEXT = "é" * 1500  # 3000 bytes on the wire
AUDIO_BYTES = 1_572_864


def audio_stream() -> io.BytesIO:
    return io.BytesIO(b"\x01" * AUDIO_BYTES)


def check_s3_put_get_delete(rows: Rows) -> None:
    assert summary(rows) == [
        ("s3_operation", "s3_put", Decimal(1), "requests"),
        ("s3_operation", "s3_put", Decimal(1), "requests"),
        ("s3_operation", "s3_get", Decimal(1), "requests"),
        ("s3_operation", "s3_delete", Decimal(1), "requests"),
    ]
    put_text, put_audio, get_audio, delete_text = (row["metadata"] for row in rows)
    assert put_text == {
        "operation": "PutObject",
        "bucket": "media",
        "s3_key": "notes.txt",
        "size_bytes": 3000,  # bytes on the wire, not characters
        "file_size_mb": 3000 / MIB,
        "content_type": "text/plain",
        "storage_class": "STANDARD",
        "size_known": True,
    }
    assert (put_audio["size_bytes"], put_audio["file_size_mb"]) == (AUDIO_BYTES, 1.5)
    assert get_audio == {
        "operation": "GetObject",
        "bucket": "media",
        "s3_key": "audio.bin",
        "size_bytes": AUDIO_BYTES,
        "file_size_mb": 1.5,
        "content_type": "binary/octet-stream",
    }
    assert delete_text == {"operation": "DeleteObject", "bucket": "media", "s3_key": "notes.txt"}


# S3 bulk deletes: a loud one (moto refuses the key under legal hold), then a quiet one
# through a stub, since moto lists deleted keys even when asked to be quiet.
def quiet_delete_reply(held_version_id: str) -> dict[str, Any]:
    """S3's quiet reply names only the failures."""
    return {
        "Errors": [
            {
                "Key": "held.txt",
                "VersionId": held_version_id,
                "Code": "AccessDenied",
                "Message": "Access Denied",
            }
        ]
    }


def check_bulk_deletes(rows: Rows) -> None:
    assert summary(rows) == [("s3_operation", "s3_delete", Decimal(1), "requests")] * 2
    assert [row["metadata"] for row in rows] == [
        {
            "operation": "DeleteObjects",
            "bucket": "vault",
            "deleted_count": 2,
            "error_count": 1,
            "keys": ["a.txt", "b.txt"],
            "keys_truncated": False,
        },
        {
            "operation": "DeleteObjects",
            "bucket": "vault",
            "deleted_count": 1,
            "error_count": 1,
            "keys": ["c.txt"],
            "keys_truncated": False,
        },
    ]


def check_only_the_put(rows: Rows) -> None:
    """After failed calls of each service and one PUT that succeeded."""
    assert summary(rows) == [("s3_operation", "s3_put", Decimal(1), "requests")]


# SES v1: a simple send to 4, a raw one to 3, a templated one to 2, a bulk one to 3.
HELLO: MessageTypeDef = {"Subject": {"Data": "hi"}, "Body": {"Text": {"Data": "hello"}}}
FOUR_RECIPIENTS: DestinationTypeDef = {
    "ToAddresses": ["a@example.com", "b@example.com"],
    "CcAddresses": ["c@example.com"],
    "BccAddresses": ["d@example.com"],
}
RAW_TO_THREE = (
    b"From: sender@example.com\r\nTo: a@example.com, Bea <b@example.com>\r\n"
    b"Cc: c@example.com\r\nSubject: hi\r\n\r\nhello\r\n"
)
WELCOME: TemplateTypeDef = {
    "TemplateName": "welcome",
    "SubjectPart": "Hi {{name}}",
    "TextPart": "{{name}}",
}
BULK_TO_THREE: list[BulkEmailDestinationTypeDef] = [
    {"Destination": {"ToAddresses": ["a@example.com"]}},
    {"Destination": {"ToAddresses": ["b@example.com"], "CcAddresses": ["c@example.com"]}},
]


def check_ses_v1_sends(rows: Rows, message_id: str) -> None:
    assert summary(rows) == [
        ("ses_email", "ses", Decimal(4), "emails"),
        ("ses_email", "ses", Decimal(3), "emails"),
        ("ses_email", "ses", Decimal(2), "emails"),
        ("ses_email", "ses", Decimal(3), "emails"),
    ]
    assert [row["metadata"]["operation"] for row in rows] == [
        "SendEmail",
        "SendRawEmail",
        "SendTemplatedEmail",
        "SendBulkTemplatedEmail",
    ]
    assert rows[0]["metadata"] == {
        "operation": "SendEmail",
        "api": "ses",
        "message_id": message_id,
        "template": "",
        "batch_size": 4,
        "success_count": 4,
        "failed_count": 0,
    }
    assert rows[2]["metadata"]["template"] == "welcome"
    assert rows[3]["metadata"] == {
        "operation": "SendBulkTemplatedEmail",
        "api": "ses",
        "destinations": 2,
        "destinations_failed": 0,
        "template": "welcome",
        "batch_size": 3,
        "success_count": 3,
        "failed_count": 0,
    }


# SESv2: a simple send to 3, a raw one to 2.
# Any where boto3-stubs and types-aiobotocore, generated from different botocore releases,
# declare the same shape as TypedDicts with different keys.
HELLO_V2: Any = {"Subject": {"Data": "hi"}, "Body": {"Text": {"Data": "hello"}}}
THREE_RECIPIENTS: DestinationV2TypeDef = {
    "ToAddresses": ["a@example.com", "b@example.com"],
    "BccAddresses": ["c@x.io"],
}
RAW_TO_TWO = b"From: sender@example.com\r\nTo: a@example.com, b@example.com\r\n\r\nhello\r\n"


def check_sesv2_sends(rows: Rows) -> None:
    assert summary(rows) == [
        ("ses_email", "ses", Decimal(3), "emails"),
        ("ses_email", "ses", Decimal(2), "emails"),
    ]
    assert [row["metadata"]["api"] for row in rows] == ["sesv2", "sesv2"]
    assert [row["metadata"]["success_count"] for row in rows] == [3, 2]


# SES bulk sends with failures, through stubs: AWS's documented replies, one status per
# destination in order. The second v1 send fails whole and records nothing.
BULK_DESTINATIONS: list[BulkEmailDestinationTypeDef] = [
    {"Destination": {"ToAddresses": ["a@example.com"], "CcAddresses": ["b@example.com"]}},
    {"Destination": {"ToAddresses": ["c@example.com", "d@example.com"]}},
    {"Destination": {"BccAddresses": ["e@example.com"]}},
]
BULK_ENTRIES: list[BulkEmailEntryTypeDef] = [
    {"Destination": d["Destination"]} for d in BULK_DESTINATIONS
]
BULK_V1_REPLIES: list[dict[str, Any]] = [
    {
        "Status": [
            {"Status": "Success", "MessageId": "m-1"},
            {"Status": "MessageRejected", "Error": "Address blacklisted."},
            {"Status": "Success", "MessageId": "m-3"},
        ]
    },
    {"Status": [{"Status": "AccountThrottled"}]},
]
BULK_V2_REPLY: dict[str, Any] = {
    "BulkEmailEntryResults": [
        {"Status": "MESSAGE_REJECTED", "Error": "Address blacklisted."},
        {"Status": "SUCCESS", "MessageId": "m-2"},
        {"Status": "SUCCESS", "MessageId": "m-3"},
    ]
}


def check_ses_bulk_failures(rows: Rows) -> None:
    assert summary(rows) == [  # the all-failed call recorded nothing
        ("ses_email", "ses", Decimal(3), "emails"),
        ("ses_email", "ses", Decimal(3), "emails"),
    ]
    assert [row["metadata"] for row in rows] == [
        {
            "operation": "SendBulkTemplatedEmail",
            "api": "ses",
            "destinations": 3,
            "destinations_failed": 1,
            "template": "welcome",
            "batch_size": 5,  # a, b | c, d (rejected) | e
            "success_count": 3,
            "failed_count": 2,
        },
        {
            "operation": "SendBulkEmail",
            "api": "sesv2",
            "destinations": 3,
            "destinations_failed": 1,
            "template": "welcome",
            "batch_size": 5,  # a, b (rejected) | c, d | e
            "success_count": 3,
            "failed_count": 2,
        },
    ]


# SQS: one message, a batch of three with one refused (a delay over 900 s), a batch of
# that one alone.
TOO_LATE: Any = {  # Any: see HELLO_V2
    "Id": "late",
    "MessageBody": "never",
    "DelaySeconds": 1000,
}
BATCH_OF_THREE: list[Any] = [
    {"Id": "a", "MessageBody": "one"},
    TOO_LATE,
    {"Id": "c", "MessageBody": "three"},
]


def check_sqs_sends(rows: Rows, queue_url: str) -> None:
    assert summary(rows) == [
        ("sqs_message", "sqs", Decimal(1), "messages"),
        ("sqs_message", "sqs", Decimal(2), "messages"),
    ]
    assert rows[0]["metadata"] == {
        "operation": "SendMessage",
        "queue_url": queue_url,
        "message_count": 1,
        "body_bytes": 6,  # "héllo"
        "message_id": rows[0]["metadata"]["message_id"],
    }
    assert rows[0]["metadata"]["message_id"]
    assert rows[1]["metadata"] == {
        "operation": "SendMessageBatch",
        "queue_url": queue_url,
        "message_count": 2,
        "body_bytes": 8,
        "failed": 1,
        "failure_codes": ["InvalidParameterValue"],
    }


# Lambda.
def function_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handle(event, context):\n    return event\n")
    return buffer.getvalue()


def function_spec(role: str, name: str, memory_mb: int) -> dict[str, Any]:
    """CreateFunction's parameters for a python3.11 function moto echoes the payload of."""
    return {
        "FunctionName": name,
        "Runtime": "python3.11",
        "Role": role,
        "Handler": "handler.handle",
        "Code": {"ZipFile": function_zip()},
        "MemorySize": memory_mb,
    }


def check_invokes_measured(rows: Rows, event_request_id: str) -> None:
    """Two RequestResponse invocations of ``transcode`` (512 MB), then an Event one."""
    # the DryRun records nothing
    assert summary(rows) == [("lambda_invocation", "lambda", Decimal(1), "requests")] * 3
    for invoke in rows[:2]:
        metadata = invoke["metadata"]
        assert metadata["memory_mb"] == 512
        assert (metadata["memory_source"], metadata["duration_source"]) == (
            "configuration",
            "measured",
        )
        billed = metadata["billed_duration_ms"]
        assert billed >= 1
        assert billed == int(billed)
        assert metadata["duration_seconds"] == billed / 1000
    assert rows[2]["metadata"] == {
        "operation": "Invoke",
        "function_name": "transcode",
        "qualifier": "",
        "invocation_type": "Event",
        "status_code": 202,
        "executed_version": "",
        "function_error": "",
        "aws_request_id": event_request_id,
        "duration_seconds": 0,  # it runs later, out of the caller's sight
        "duration_source": "not_seen",
    }


def check_memory_from_replies(rows: Rows) -> None:
    """Invocations of ``thumbnail`` created with 1024 MB, then updated to 2048 MB."""
    invokes = by_type(rows, "lambda_invocation")
    assert [row["metadata"]["memory_mb"] for row in invokes] == [1024, 2048]
    assert {row["metadata"]["memory_source"] for row in invokes} == {"configuration"}


_TAIL_LOG = (
    "START RequestId: r-1 Version: $LATEST\nEND RequestId: r-1\n"
    "REPORT RequestId: r-1\tDuration: 1234.56 ms\tBilled Duration: 1235 ms\t"
    "Memory Size: 256 MB\tMax Memory Used: 70 MB\t\n"
)
TAIL_LOG_REPLY: dict[str, Any] = {
    "StatusCode": 200,
    "FunctionError": "Unhandled",  # a failed run is billed all the same
    "LogResult": base64.b64encode(_TAIL_LOG.encode()).decode(),
    "ExecutedVersion": "$LATEST",
}


def check_tail_log(rows: Rows) -> None:
    assert summary(rows) == [("lambda_invocation", "lambda", Decimal(1), "requests")]
    assert rows[0]["metadata"] == {
        "operation": "Invoke",
        "function_name": "resize",
        "qualifier": "",
        "invocation_type": "RequestResponse",
        "status_code": 200,
        "executed_version": "$LATEST",
        "function_error": "Unhandled",
        "billed_duration_ms": 1235,
        "duration_seconds": 1.235,  # x 0.25 GB: 0.30875 GB-seconds
        "memory_mb": 256,
        "duration_source": "log",
        "memory_source": "log",
    }


# Attribution.
EPISODE = UserContext("user-7", "pro", episode_id="ep-42", podcast_id="pod-9")


def check_attribution(rows: Rows) -> None:
    """A PUT inside ``user_context(EPISODE)``, then a DELETE outside any context."""
    assert [(r["user_id"], r["tier"], r["episode_id"], r["podcast_id"]) for r in rows] == [
        ("user-7", "pro", "ep-42", "pod-9"),
        (None, None, None, None),
    ]


def check_recorded_once(rows: Rows) -> None:
    """One SendMessage through a session and a client each instrumented more than once."""
    assert summary(rows) == [("sqs_message", "sqs", Decimal(1), "messages")]


# Pricing: a 1 MiB PUT, its GET and DELETE, 2 emails, a batch of 3 messages, one 1.235 s
# invocation at 256 MB (a stubbed tail log).
ONE_MIB = b"\x00" * MIB
PRICED_REPORT = "REPORT RequestId: r\tBilled Duration: 1235 ms\tMemory Size: 256 MB\t\n"
PRICED_INVOKE_REPLY: dict[str, Any] = {
    "StatusCode": 200,
    "LogResult": base64.b64encode(PRICED_REPORT.encode()).decode(),
}


async def check_priced_by_the_rollup(telemetry: TelemetryClient, db: asyncpg.Pool) -> None:
    assert len(await recorded(telemetry, db)) == 6
    today = datetime.now(UTC).date()
    prices = Pricing(SeedPrices.from_env({}), AwsPrices.from_env({}))
    await rollup_costs_for_date(db, today, tz=ZoneInfo("UTC"), pricing=prices)
    day = await db.fetchrow("SELECT * FROM cost_global_daily WHERE date = $1", today)
    assert day is not None
    assert day["unpriced_json"] == {}
    put_at, delete_at = [
        r["created_at"]
        for r in await db.fetch(
            "SELECT created_at FROM cost_events WHERE service IN ('s3_put', 's3_delete')"
            " ORDER BY id"
        )
    ]
    held = Decimal((delete_at - put_at) // timedelta(microseconds=1)) / 10**6
    assert 0 < held < 60
    # By hand, at the us-east-1 list prices: a PUT, 1 MiB held from the PUT to the DELETE
    # (at $0.023 per GiB held 30 days), a GET, a free DELETE, 2 emails, 3 messages in one
    # batch request, one 1.235 s invocation at 256 MB.
    expected = (
        Decimal("0.005") / 1000
        + held / 1024 * Decimal("0.023") / 2_592_000
        + Decimal("0.0004") / 1000
        + 2 * Decimal("0.10") / 1000
        + Decimal("0.40") / 10**6
        + Decimal("0.20") / 10**6
        + Decimal("1.235") * Decimal("0.25") * Decimal("0.0000166667")
    )
    # Stored exact, the storage at a per-byte rate kept to 1e-24: equal as shown, 8 places.
    assert round_usd(day["cost_usd"]) == expected.quantize(Decimal("0.00000001"), ROUND_HALF_UP)
    assert set(day["cost_by_service_json"]) == {"s3_put", "s3_get", "s3_delete", "s3_storage",
                                                "ses", "sqs", "lambda"}  # fmt: skip


class UnreachableTelemetry(TelemetryClient):
    def emit(self, event: telemetry_pb2.TelemetryEvent) -> None:
        raise RuntimeError("telemetry is down")


def check_telemetry_failures_logged(messages: list[str]) -> None:
    """What the costguard loggers said while a PUT and a GET went through a broken client."""
    assert messages == ["could not record cost events"] * 2
