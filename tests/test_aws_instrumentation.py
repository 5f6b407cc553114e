"""aiobotocore instrumentation: real clients against a real moto server, events read back
from Postgres through the real telemetry service.

Where moto cannot produce a reply (SES bulk partial failures, SESv2 SendBulkEmail, S3's quiet
bulk delete, a Lambda tail log) the real client is given a reply shaped like AWS's documented
one through aiobotocore's own ``AioStubber``, which validates it against the service model.
The inputs and the expected events are ``tests.aws_cases``', shared with the boto3 tests.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

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
from types_aiobotocore_sesv2 import SESV2Client
from types_aiobotocore_sqs import SQSClient

from costguard.sdk import TelemetryClient, user_context
from costguard.sdk.aws import instrument_aws
from tests import aws_cases as cases
from tests.aws_cases import SENDER, recorded
from tests.moto_server import (
    ACCESS_KEY,
    ACCOUNT_ID,
    REGION,
    SECRET_KEY,
)

PATH_STYLE = AioConfig(s3={"addressing_style": "path"})


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


async def test_s3_put_get_delete_record_sizes_on_an_instrumented_session(
    moto: str, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    session = AioSession()
    instrument_aws(session, telemetry=telemetry)  # before the client exists
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
            Bucket="media", Key="notes.txt", Body=cases.NOTES_TEXT, ContentType="text/plain"
        )
        await s3.put_object(Bucket="media", Key="audio.bin", Body=cases.audio_stream())
        got = await s3.get_object(Bucket="media", Key="audio.bin")
        assert len(await got["Body"].read()) == cases.AUDIO_BYTES
        await s3.delete_object(Bucket="media", Key="notes.txt")

    cases.check_s3_put_get_delete(await recorded(telemetry, db))


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
    with AioStubber(s3) as stub:
        stub.add_response("delete_objects", cases.quiet_delete_reply(held["VersionId"]))
        await s3.delete_objects(
            Bucket="vault", Delete={"Objects": [{"Key": "c.txt"}, held_version], "Quiet": True}
        )

    cases.check_bulk_deletes(await recorded(telemetry, db))


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
            Message=cases.HELLO,
        )
    with pytest.raises(ClientError, match="NonExistentQueue"):
        await sqs.send_message(
            QueueUrl=f"{sqs.meta.endpoint_url}/{ACCOUNT_ID}/nowhere", MessageBody="x"
        )
    await s3.put_object(Bucket="media", Key="ok.txt", Body=b"ok")

    cases.check_only_the_put(await recorded(telemetry, db))


async def test_ses_v1_sends_count_every_recipient(
    ses: SESClient, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    instrument_aws(ses, telemetry=telemetry)
    sent = await ses.send_email(
        Source=SENDER, Destination=cases.FOUR_RECIPIENTS, Message=cases.HELLO
    )
    await ses.send_raw_email(RawMessage={"Data": cases.RAW_TO_THREE})
    await ses.create_template(Template=cases.WELCOME)
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
        Destinations=cases.BULK_TO_THREE,
    )

    cases.check_ses_v1_sends(await recorded(telemetry, db), sent["MessageId"])


async def test_sesv2_send_email_counts_recipients(
    sesv2: SESV2Client, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    instrument_aws(sesv2, telemetry=telemetry)
    await sesv2.send_email(
        FromEmailAddress=SENDER,
        Destination=cases.THREE_RECIPIENTS,
        Content={"Simple": cases.HELLO_V2},
    )
    await sesv2.send_email(FromEmailAddress=SENDER, Content={"Raw": {"Data": cases.RAW_TO_TWO}})

    cases.check_sesv2_sends(await recorded(telemetry, db))


async def test_ses_bulk_sends_count_only_destinations_that_succeeded(
    ses: SESClient, sesv2: SESV2Client, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    instrument_aws(ses, telemetry=telemetry)
    instrument_aws(sesv2, telemetry=telemetry)
    with AioStubber(ses) as stub:
        for reply in cases.BULK_V1_REPLIES:
            stub.add_response("send_bulk_templated_email", reply)
        await ses.send_bulk_templated_email(
            Source=SENDER,
            Template="welcome",
            DefaultTemplateData="{}",
            Destinations=cases.BULK_DESTINATIONS,
        )
        await ses.send_bulk_templated_email(
            Source=SENDER,
            Template="welcome",
            DefaultTemplateData="{}",
            Destinations=cases.BULK_DESTINATIONS[:1],
        )
    with AioStubber(sesv2) as stub:
        stub.add_response("send_bulk_email", cases.BULK_V2_REPLY)
        await sesv2.send_bulk_email(
            FromEmailAddress=SENDER,
            DefaultContent={"Template": {"TemplateName": "welcome", "TemplateData": "{}"}},
            BulkEmailEntries=cases.BULK_ENTRIES,
        )

    cases.check_ses_bulk_failures(await recorded(telemetry, db))


async def test_sqs_counts_messages_and_only_successful_batch_entries(
    sqs: SQSClient, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    queue = (await sqs.create_queue(QueueName="jobs"))["QueueUrl"]
    instrument_aws(sqs, telemetry=telemetry)
    await sqs.send_message(QueueUrl=queue, MessageBody="héllo")
    reply = await sqs.send_message_batch(QueueUrl=queue, Entries=cases.BATCH_OF_THREE)
    assert [entry["Id"] for entry in reply["Failed"]] == ["late"]  # moto refused one entry
    none_sent = await sqs.send_message_batch(QueueUrl=queue, Entries=[cases.TOO_LATE])
    assert "Successful" not in none_sent or not none_sent["Successful"]

    cases.check_sqs_sends(await recorded(telemetry, db), queue)


async def test_lambda_invoke_measures_duration_and_looks_memory_up_once(
    lambda_client: LambdaClient, lambda_role: str, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    await lambda_client.create_function(**cases.function_spec(lambda_role, "transcode", 512))
    instrument_aws(lambda_client, telemetry=telemetry)  # the memory size not yet seen
    lookups = cases.calls_seen(lambda_client, "GetFunctionConfiguration")
    for _ in range(2):
        reply = await lambda_client.invoke(FunctionName="transcode", Payload=b'{"n": 1}')
        assert await reply["Payload"].read() == b'{"n": 1}'
    queued = await lambda_client.invoke(FunctionName="transcode", InvocationType="Event")
    dry = await lambda_client.invoke(FunctionName="transcode", InvocationType="DryRun")
    assert (queued["StatusCode"], dry["StatusCode"]) == (202, 204)
    assert lookups == ["GetFunctionConfiguration"]  # once, then cached; itself not recorded

    rows = await recorded(telemetry, db)
    cases.check_invokes_measured(rows, queued["ResponseMetadata"]["RequestId"])


async def test_lambda_memory_comes_from_create_and_update_replies(
    lambda_client: LambdaClient, lambda_role: str, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    instrument_aws(lambda_client, telemetry=telemetry)
    lookups = cases.calls_seen(lambda_client, "GetFunctionConfiguration")
    await lambda_client.create_function(**cases.function_spec(lambda_role, "thumbnail", 1024))
    await lambda_client.invoke(FunctionName="thumbnail")
    await lambda_client.update_function_configuration(FunctionName="thumbnail", MemorySize=2048)
    await lambda_client.invoke(FunctionName="thumbnail")
    assert lookups == []

    cases.check_memory_from_replies(await recorded(telemetry, db))


async def test_lambda_tail_log_gives_billed_duration_and_memory(
    lambda_client: LambdaClient, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    instrument_aws(lambda_client, telemetry=telemetry)
    lookups = cases.calls_seen(lambda_client, "GetFunctionConfiguration")
    with AioStubber(lambda_client) as stub:
        stub.add_response("invoke", cases.TAIL_LOG_REPLY)
        await lambda_client.invoke(FunctionName="resize", LogType="Tail")
    assert lookups == []

    cases.check_tail_log(await recorded(telemetry, db))


async def test_events_are_attributed_to_the_current_user_context(
    s3: S3Client, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    await s3.create_bucket(Bucket="media")
    instrument_aws(s3, telemetry=telemetry)
    with user_context(cases.EPISODE):
        await s3.put_object(Bucket="media", Key="ep-42.mp3", Body=b"ID3")
    await s3.delete_object(Bucket="media", Key="ep-42.mp3")  # outside any context

    cases.check_attribution(await recorded(telemetry, db))


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

    cases.check_recorded_once(await recorded(telemetry, db))


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
    await s3.put_object(Bucket="media", Key="ep.mp3", Body=cases.ONE_MIB)
    await (await s3.get_object(Bucket="media", Key="ep.mp3"))["Body"].read()
    await s3.delete_object(Bucket="media", Key="ep.mp3")
    await ses.send_email(
        Source=SENDER, Destination={"ToAddresses": ["a@x.io", "b@x.io"]}, Message=cases.HELLO
    )
    queue = (await sqs.create_queue(QueueName="jobs"))["QueueUrl"]
    await sqs.send_message_batch(
        QueueUrl=queue, Entries=[{"Id": str(i), "MessageBody": "x" * 100} for i in range(3)]
    )
    with AioStubber(lambda_client) as stub:
        stub.add_response("invoke", cases.PRICED_INVOKE_REPLY)
        await lambda_client.invoke(FunctionName="resize", LogType="Tail")

    await cases.check_priced_by_the_rollup(telemetry, db)


async def test_telemetry_failures_never_break_the_aws_call(
    s3: S3Client, telemetry_addr: str, caplog: pytest.LogCaptureFixture
) -> None:
    broken = cases.UnreachableTelemetry(telemetry_addr)
    await s3.create_bucket(Bucket="media")
    instrument_aws(s3, telemetry=broken)
    with caplog.at_level(logging.ERROR):
        await s3.put_object(Bucket="media", Key="a.txt", Body=b"abc")
        got = await s3.get_object(Bucket="media", Key="a.txt")
    assert await got["Body"].read() == b"abc"
    cases.check_telemetry_failures_logged(
        [r.message for r in caplog.records if r.name.startswith("costguard")]
    )
    await broken.close()
