"""aiobotocore instrumentation: real clients against a real moto server, events read back
from Postgres through the real telemetry service.

Where moto cannot produce a reply (SES bulk partial failures, SESv2 SendBulkEmail, S3's quiet
bulk delete, a Lambda tail log) the real client is given a reply shaped like AWS's documented
one through aiobotocore's own ``AioStubber``, which validates it against the service model.
"""

from __future__ import annotations

import base64
import io
import logging
import zipfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from aiobotocore.stub import AioStubber
from botocore.exceptions import ClientError
from types_aiobotocore_lambda import LambdaClient
from types_aiobotocore_s3 import S3Client
from types_aiobotocore_s3.type_defs import ObjectIdentifierTypeDef
from types_aiobotocore_ses import SESClient
from types_aiobotocore_ses.type_defs import BulkEmailDestinationTypeDef, MessageTypeDef
from types_aiobotocore_sesv2 import SESV2Client
from types_aiobotocore_sesv2.type_defs import BulkEmailEntryTypeDef
from types_aiobotocore_sesv2.type_defs import MessageTypeDef as MessageV2TypeDef
from types_aiobotocore_sqs import SQSClient
from types_aiobotocore_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

from costguard.common.money import round_usd
from costguard.common.pricing import AwsPrices, SeedPrices
from costguard.rollup.rollup import Pricing, rollup_costs_for_date
from costguard.sdk import TelemetryClient, UserContext, user_context
from costguard.sdk.aws import instrument_aws
from costguard.v1 import telemetry_pb2
from tests.moto_server import (
    ACCESS_KEY,
    ACCOUNT_ID,
    REGION,
    SECRET_KEY,
    reset_moto,
    running_moto_server,
)

SENDER = "sender@example.com"
PATH_STYLE = AioConfig(s3={"addressing_style": "path"})


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    with running_moto_server() as url:
        yield url


@pytest.fixture
async def moto(moto_server: str) -> str:
    """The moto server's URL, with every resource from earlier tests forgotten."""
    await reset_moto(moto_server)
    return moto_server


@pytest.fixture
async def telemetry(telemetry_addr: str) -> AsyncIterator[TelemetryClient]:
    client = TelemetryClient(telemetry_addr)
    yield client
    await client.close()


async def recorded(telemetry: TelemetryClient, db: asyncpg.Pool) -> list[dict[str, Any]]:
    """Every cost event the telemetry service stored, in the order they were recorded."""
    await telemetry.flush()
    rows = await db.fetch(
        "SELECT event_type, service, quantity, unit, metadata, user_id, tier, episode_id,"
        " podcast_id FROM cost_events ORDER BY id"
    )
    return [dict(row) for row in rows]


@pytest.fixture
async def s3(moto: str) -> AsyncIterator[S3Client]:
    session = AioSession()
    async with session.create_client(
        "s3",
        region_name=REGION,
        endpoint_url=moto,
        config=PATH_STYLE,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    ) as client:
        yield client


@pytest.fixture
async def ses(moto: str) -> AsyncIterator[SESClient]:
    async with AioSession().create_client(
        "ses",
        region_name=REGION,
        endpoint_url=moto,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    ) as client:
        await client.verify_email_identity(EmailAddress=SENDER)
        yield client


@pytest.fixture
async def sesv2(moto: str, ses: SESClient) -> AsyncIterator[SESV2Client]:
    async with AioSession().create_client(
        "sesv2",
        region_name=REGION,
        endpoint_url=moto,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    ) as client:
        yield client


@pytest.fixture
async def sqs(moto: str) -> AsyncIterator[SQSClient]:
    async with AioSession().create_client(
        "sqs",
        region_name=REGION,
        endpoint_url=moto,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    ) as client:
        yield client


@pytest.fixture
async def lambda_client(moto: str) -> AsyncIterator[LambdaClient]:
    async with AioSession().create_client(
        "lambda",
        region_name=REGION,
        endpoint_url=moto,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    ) as client:
        yield client


@pytest.fixture
async def lambda_role(moto: str) -> str:
    async with AioSession().create_client(
        "iam",
        region_name=REGION,
        endpoint_url=moto,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    ) as iam:
        reply = await iam.create_role(RoleName="runner", AssumeRolePolicyDocument="{}")
    role: str = reply["Role"]["Arn"]
    assert role == f"arn:aws:iam::{ACCOUNT_ID}:role/runner"
    return role


def by_type(rows: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [row for row in rows if row["event_type"] == event_type]


def summary(rows: list[dict[str, Any]]) -> list[tuple[str, str, Decimal, str]]:
    return [(r["event_type"], r["service"], r["quantity"], r["unit"]) for r in rows]


async def test_s3_put_get_delete_record_sizes_on_an_instrumented_session(
    moto: str, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    session = AioSession()
    instrument_aws(session, telemetry=telemetry)  # before the client exists
    audio = 1_572_864  # 1.5 MiB from a stream, which is read only when sent
    async with session.create_client(
        "s3",
        region_name=REGION,
        endpoint_url=moto,
        config=PATH_STYLE,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    ) as s3:
        await s3.create_bucket(Bucket="media")
        await s3.put_object(
            Bucket="media", Key="notes.txt", Body="é" * 1500, ContentType="text/plain"
        )
        await s3.put_object(Bucket="media", Key="audio.bin", Body=io.BytesIO(b"\x01" * audio))
        got = await s3.get_object(Bucket="media", Key="audio.bin")
        assert len(await got["Body"].read()) == audio
        await s3.delete_object(Bucket="media", Key="notes.txt")

    rows = await recorded(telemetry, db)
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
        "file_size_mb": 3000 / 1_048_576,
        "content_type": "text/plain",
        "storage_class": "STANDARD",
        "size_known": True,
    }
    assert (put_audio["size_bytes"], put_audio["file_size_mb"]) == (audio, 1.5)
    assert get_audio == {
        "operation": "GetObject",
        "bucket": "media",
        "s3_key": "audio.bin",
        "size_bytes": audio,
        "file_size_mb": 1.5,
        "content_type": "binary/octet-stream",
    }
    assert delete_text == {"operation": "DeleteObject", "bucket": "media", "s3_key": "notes.txt"}


async def test_s3_bulk_delete_counts_only_the_keys_deleted(
    s3: S3Client, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    await s3.create_bucket(Bucket="vault", ObjectLockEnabledForBucket=True)
    for key in ("a.txt", "b.txt"):
        await s3.put_object(Bucket="vault", Key=key, Body=b"1")
    held = await s3.put_object(
        Bucket="vault", Key="held.txt", Body=b"1", ObjectLockLegalHoldStatus="ON"
    )
    held_version: ObjectIdentifierTypeDef = {"Key": "held.txt", "VersionId": held["VersionId"]}
    instrument_aws(s3, telemetry=telemetry)

    loud = await s3.delete_objects(
        Bucket="vault", Delete={"Objects": [{"Key": "a.txt"}, {"Key": "b.txt"}, held_version]}
    )
    assert [error["Key"] for error in loud["Errors"]] == ["held.txt"]  # moto refused one
    with AioStubber(s3) as stub:  # moto lists deleted keys even when asked to be quiet
        stub.add_response(  # S3's quiet reply names only the failures
            "delete_objects",
            {"Errors": [{**held_version, "Code": "AccessDenied", "Message": "Access Denied"}]},
        )
        await s3.delete_objects(
            Bucket="vault", Delete={"Objects": [{"Key": "c.txt"}, held_version], "Quiet": True}
        )

    rows = await recorded(telemetry, db)
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


async def test_failed_calls_record_nothing(
    s3: S3Client,
    ses: SESClient,
    sqs: SQSClient,
    telemetry: TelemetryClient,
    db: asyncpg.Pool,
) -> None:
    for client in (s3, ses, sqs):
        instrument_aws(client, telemetry=telemetry)
    await s3.create_bucket(Bucket="media")
    with pytest.raises(ClientError, match="NoSuchKey"):
        await s3.get_object(Bucket="media", Key="missing")
    with pytest.raises(ClientError, match="MessageRejected"):
        await ses.send_email(
            Source="stranger@example.com",  # not verified
            Destination={"ToAddresses": ["a@example.com"]},
            Message={"Subject": {"Data": "hi"}, "Body": {"Text": {"Data": "hello"}}},
        )
    with pytest.raises(ClientError, match="NonExistentQueue"):
        await sqs.send_message(
            QueueUrl=f"{sqs.meta.endpoint_url}/{ACCOUNT_ID}/nowhere", MessageBody="x"
        )
    await s3.put_object(Bucket="media", Key="ok.txt", Body=b"ok")

    rows = await recorded(telemetry, db)
    assert summary(rows) == [("s3_operation", "s3_put", Decimal(1), "requests")]


async def test_ses_v1_sends_count_every_recipient(
    ses: SESClient, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    instrument_aws(ses, telemetry=telemetry)
    message: MessageTypeDef = {"Subject": {"Data": "hi"}, "Body": {"Text": {"Data": "hello"}}}
    sent = await ses.send_email(
        Source=SENDER,
        Destination={
            "ToAddresses": ["a@example.com", "b@example.com"],
            "CcAddresses": ["c@example.com"],
            "BccAddresses": ["d@example.com"],
        },
        Message=message,
    )
    raw = (
        b"From: sender@example.com\r\nTo: a@example.com, Bea <b@example.com>\r\n"
        b"Cc: c@example.com\r\nSubject: hi\r\n\r\nhello\r\n"
    )
    await ses.send_raw_email(RawMessage={"Data": raw})
    await ses.create_template(
        Template={"TemplateName": "welcome", "SubjectPart": "Hi {{name}}", "TextPart": "{{name}}"}
    )
    await ses.send_templated_email(
        Source=SENDER,
        Destination={"ToAddresses": ["a@example.com", "b@example.com"]},
        Template="welcome",
        TemplateData='{"name": "Ann"}',
    )
    await ses.send_bulk_templated_email(
        Source=SENDER,
        Template="welcome",
        DefaultTemplateData='{"name": "you"}',
        Destinations=[
            {"Destination": {"ToAddresses": ["a@example.com"]}},
            {"Destination": {"ToAddresses": ["b@example.com"], "CcAddresses": ["c@example.com"]}},
        ],
    )

    rows = await recorded(telemetry, db)
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
        "message_id": sent["MessageId"],
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


async def test_sesv2_send_email_counts_recipients(
    sesv2: SESV2Client, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    instrument_aws(sesv2, telemetry=telemetry)
    simple: MessageV2TypeDef = {"Subject": {"Data": "hi"}, "Body": {"Text": {"Data": "hello"}}}
    await sesv2.send_email(
        FromEmailAddress=SENDER,
        Destination={"ToAddresses": ["a@example.com", "b@example.com"], "BccAddresses": ["c@x.io"]},
        Content={"Simple": simple},
    )
    raw = b"From: sender@example.com\r\nTo: a@example.com, b@example.com\r\n\r\nhello\r\n"
    await sesv2.send_email(FromEmailAddress=SENDER, Content={"Raw": {"Data": raw}})

    rows = await recorded(telemetry, db)
    assert summary(rows) == [
        ("ses_email", "ses", Decimal(3), "emails"),
        ("ses_email", "ses", Decimal(2), "emails"),
    ]
    assert [row["metadata"]["api"] for row in rows] == ["sesv2", "sesv2"]
    assert [row["metadata"]["success_count"] for row in rows] == [3, 2]


async def test_ses_bulk_sends_count_only_destinations_that_succeeded(
    ses: SESClient, sesv2: SESV2Client, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    instrument_aws(ses, telemetry=telemetry)
    instrument_aws(sesv2, telemetry=telemetry)
    destinations: list[BulkEmailDestinationTypeDef] = [
        {"Destination": {"ToAddresses": ["a@example.com"], "CcAddresses": ["b@example.com"]}},
        {"Destination": {"ToAddresses": ["c@example.com", "d@example.com"]}},
        {"Destination": {"BccAddresses": ["e@example.com"]}},
    ]
    with AioStubber(ses) as stub:
        # AWS's documented reply: one status per destination, in order.
        stub.add_response(
            "send_bulk_templated_email",
            {
                "Status": [
                    {"Status": "Success", "MessageId": "m-1"},
                    {"Status": "MessageRejected", "Error": "Address blacklisted."},
                    {"Status": "Success", "MessageId": "m-3"},
                ]
            },
        )
        stub.add_response("send_bulk_templated_email", {"Status": [{"Status": "AccountThrottled"}]})
        await ses.send_bulk_templated_email(
            Source=SENDER, Template="welcome", DefaultTemplateData="{}", Destinations=destinations
        )
        await ses.send_bulk_templated_email(
            Source=SENDER,
            Template="welcome",
            DefaultTemplateData="{}",
            Destinations=destinations[:1],
        )
    entries: list[BulkEmailEntryTypeDef] = [{"Destination": d["Destination"]} for d in destinations]
    with AioStubber(sesv2) as stub:
        stub.add_response(
            "send_bulk_email",
            {
                "BulkEmailEntryResults": [
                    {"Status": "MESSAGE_REJECTED", "Error": "Address blacklisted."},
                    {"Status": "SUCCESS", "MessageId": "m-2"},
                    {"Status": "SUCCESS", "MessageId": "m-3"},
                ]
            },
        )
        await sesv2.send_bulk_email(
            FromEmailAddress=SENDER,
            DefaultContent={"Template": {"TemplateName": "welcome", "TemplateData": "{}"}},
            BulkEmailEntries=entries,
        )

    rows = await recorded(telemetry, db)
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


async def test_sqs_counts_messages_and_only_successful_batch_entries(
    sqs: SQSClient, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    queue = (await sqs.create_queue(QueueName="jobs"))["QueueUrl"]
    instrument_aws(sqs, telemetry=telemetry)
    await sqs.send_message(QueueUrl=queue, MessageBody="héllo")
    too_late: SendMessageBatchRequestEntryTypeDef = {
        "Id": "late",
        "MessageBody": "never",
        "DelaySeconds": 1000,
    }  # over 900 s
    reply = await sqs.send_message_batch(
        QueueUrl=queue,
        Entries=[{"Id": "a", "MessageBody": "one"}, too_late, {"Id": "c", "MessageBody": "three"}],
    )
    assert [entry["Id"] for entry in reply["Failed"]] == ["late"]  # moto refused one entry
    none_sent = await sqs.send_message_batch(QueueUrl=queue, Entries=[too_late])
    assert "Successful" not in none_sent or not none_sent["Successful"]

    rows = await recorded(telemetry, db)
    assert summary(rows) == [
        ("sqs_message", "sqs", Decimal(1), "messages"),
        ("sqs_message", "sqs", Decimal(2), "messages"),
    ]
    assert rows[0]["metadata"] == {
        "operation": "SendMessage",
        "queue_url": queue,
        "message_count": 1,
        "body_bytes": 6,
        "message_id": rows[0]["metadata"]["message_id"],
    }
    assert rows[0]["metadata"]["message_id"]
    assert rows[1]["metadata"] == {
        "operation": "SendMessageBatch",
        "queue_url": queue,
        "message_count": 2,
        "body_bytes": 8,
        "failed": 1,
        "failure_codes": ["InvalidParameterValue"],
    }


def function_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handle(event, context):\n    return event\n")
    return buffer.getvalue()


async def create_function(client: LambdaClient, role: str, name: str, memory_mb: int) -> None:
    await client.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=role,
        Handler="handler.handle",
        Code={"ZipFile": function_zip()},
        MemorySize=memory_mb,
    )


def calls_seen(client: LambdaClient, operation: str) -> list[str]:
    """Every ``operation`` call made through ``client`` from now on, by anyone."""
    seen: list[str] = []

    def saw(**_: Any) -> None:
        seen.append(operation)

    client.meta.events.register(f"after-call.lambda.{operation}", saw)
    return seen


async def test_lambda_invoke_measures_duration_and_looks_memory_up_once(
    lambda_client: LambdaClient, lambda_role: str, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    await create_function(lambda_client, lambda_role, "transcode", 512)  # memory not yet seen
    instrument_aws(lambda_client, telemetry=telemetry)
    lookups = calls_seen(lambda_client, "GetFunctionConfiguration")
    for _ in range(2):
        reply = await lambda_client.invoke(FunctionName="transcode", Payload=b'{"n": 1}')
        assert await reply["Payload"].read() == b'{"n": 1}'
    queued = await lambda_client.invoke(FunctionName="transcode", InvocationType="Event")
    dry = await lambda_client.invoke(FunctionName="transcode", InvocationType="DryRun")
    assert (queued["StatusCode"], dry["StatusCode"]) == (202, 204)
    assert lookups == ["GetFunctionConfiguration"]  # once, then cached; itself not recorded

    rows = await recorded(telemetry, db)
    # two invocations, then the Event one; the DryRun records nothing
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
        "duration_seconds": 0,  # it runs later, out of the caller's sight
        "duration_source": "not_seen",
    }


async def test_lambda_memory_comes_from_create_and_update_replies(
    lambda_client: LambdaClient, lambda_role: str, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    instrument_aws(lambda_client, telemetry=telemetry)
    lookups = calls_seen(lambda_client, "GetFunctionConfiguration")
    await create_function(lambda_client, lambda_role, "thumbnail", 1024)
    await lambda_client.invoke(FunctionName="thumbnail")
    await lambda_client.update_function_configuration(FunctionName="thumbnail", MemorySize=2048)
    await lambda_client.invoke(FunctionName="thumbnail")
    assert lookups == []

    invokes = by_type(await recorded(telemetry, db), "lambda_invocation")
    assert [row["metadata"]["memory_mb"] for row in invokes] == [1024, 2048]
    assert {row["metadata"]["memory_source"] for row in invokes} == {"configuration"}


async def test_lambda_tail_log_gives_billed_duration_and_memory(
    lambda_client: LambdaClient, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    instrument_aws(lambda_client, telemetry=telemetry)
    lookups = calls_seen(lambda_client, "GetFunctionConfiguration")
    log_tail = (
        "START RequestId: r-1 Version: $LATEST\nEND RequestId: r-1\n"
        "REPORT RequestId: r-1\tDuration: 1234.56 ms\tBilled Duration: 1235 ms\t"
        "Memory Size: 256 MB\tMax Memory Used: 70 MB\t\n"
    )
    with AioStubber(lambda_client) as stub:
        stub.add_response(
            "invoke",
            {
                "StatusCode": 200,
                "FunctionError": "Unhandled",  # a failed run is billed all the same
                "LogResult": base64.b64encode(log_tail.encode()).decode(),
                "ExecutedVersion": "$LATEST",
            },
        )
        await lambda_client.invoke(FunctionName="resize", LogType="Tail")
    assert lookups == []

    rows = await recorded(telemetry, db)
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


async def test_events_are_attributed_to_the_current_user_context(
    s3: S3Client, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    await s3.create_bucket(Bucket="media")
    instrument_aws(s3, telemetry=telemetry)
    episode = UserContext("user-7", "pro", episode_id="ep-42", podcast_id="pod-9")
    with user_context(episode):
        await s3.put_object(Bucket="media", Key="ep-42.mp3", Body=b"ID3")
    await s3.delete_object(Bucket="media", Key="ep-42.mp3")  # outside any context

    rows = await recorded(telemetry, db)
    assert [(r["user_id"], r["tier"], r["episode_id"], r["podcast_id"]) for r in rows] == [
        ("user-7", "pro", "ep-42", "pod-9"),
        (None, None, None, None),
    ]


async def test_instrumenting_twice_records_each_call_once(
    moto: str, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    session = AioSession()
    instrument_aws(session, telemetry=telemetry)
    instrument_aws(session, telemetry=telemetry)
    async with session.create_client(
        "sqs",
        region_name=REGION,
        endpoint_url=moto,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    ) as sqs:
        instrument_aws(sqs, telemetry=telemetry)
        queue = (await sqs.create_queue(QueueName="once"))["QueueUrl"]
        await sqs.send_message(QueueUrl=queue, MessageBody="x")

    assert summary(await recorded(telemetry, db)) == [
        ("sqs_message", "sqs", Decimal(1), "messages")
    ]


async def test_what_the_instrumentation_records_the_rollup_prices(
    *,
    s3: S3Client,
    ses: SESClient,
    sqs: SQSClient,
    lambda_client: LambdaClient,
    telemetry: TelemetryClient,
    db: asyncpg.Pool,
) -> None:
    for client in (s3, ses, sqs, lambda_client):
        instrument_aws(client, telemetry=telemetry)
    await s3.create_bucket(Bucket="media")
    await s3.put_object(Bucket="media", Key="ep.mp3", Body=b"\x00" * 1_048_576)  # 1 MiB
    await (await s3.get_object(Bucket="media", Key="ep.mp3"))["Body"].read()
    await s3.delete_object(Bucket="media", Key="ep.mp3")
    message: MessageTypeDef = {"Subject": {"Data": "hi"}, "Body": {"Text": {"Data": "hello"}}}
    await ses.send_email(
        Source=SENDER, Destination={"ToAddresses": ["a@x.io", "b@x.io"]}, Message=message
    )
    queue = (await sqs.create_queue(QueueName="jobs"))["QueueUrl"]
    await sqs.send_message_batch(
        QueueUrl=queue, Entries=[{"Id": str(i), "MessageBody": "x" * 100} for i in range(3)]
    )
    report = "REPORT RequestId: r\tBilled Duration: 1235 ms\tMemory Size: 256 MB\t\n"
    with AioStubber(lambda_client) as stub:
        stub.add_response(
            "invoke", {"StatusCode": 200, "LogResult": base64.b64encode(report.encode()).decode()}
        )
        await lambda_client.invoke(FunctionName="resize", LogType="Tail")
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


async def test_telemetry_failures_never_break_the_aws_call(
    s3: S3Client, telemetry_addr: str, caplog: pytest.LogCaptureFixture
) -> None:
    broken = UnreachableTelemetry(telemetry_addr)
    await s3.create_bucket(Bucket="media")
    instrument_aws(s3, telemetry=broken)
    with caplog.at_level(logging.ERROR):
        await s3.put_object(Bucket="media", Key="a.txt", Body=b"abc")
        got = await s3.get_object(Bucket="media", Key="a.txt")
    assert await got["Body"].read() == b"abc"
    ours = [r.message for r in caplog.records if r.name.startswith("costguard")]
    assert ours == ["could not record cost events"] * 2
    await broken.close()
