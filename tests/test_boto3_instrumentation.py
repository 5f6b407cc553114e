"""boto3 instrumentation: the same operations as the aiobotocore tests, through real sync
boto3 clients against the real moto server, events read back from Postgres through the
real telemetry service, checked against the same expectations (``tests.aws_cases``).

The AWS calls run on a worker thread (``asyncio.to_thread``), as a sync application's
would: the test's event loop meanwhile serves the telemetry service, and the telemetry
client, called where no event loop runs, ships from its own background thread. Where moto
cannot produce a reply, botocore's ``Stubber`` gives the real client AWS's documented one.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import asyncpg
import boto3
import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from mypy_boto3_lambda import LambdaClient
from mypy_boto3_s3 import S3Client
from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef
from mypy_boto3_ses import SESClient
from mypy_boto3_sesv2 import SESV2Client
from mypy_boto3_sqs import SQSClient

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

PATH_STYLE = Config(s3={"addressing_style": "path"})
ROOT = Path(__file__).resolve().parents[1]


def aws_session() -> boto3.Session:
    return boto3.Session(
        region_name=REGION, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY
    )


@pytest.fixture
def s3(moto: str) -> Iterator[S3Client]:
    client = aws_session().client("s3", endpoint_url=moto, config=PATH_STYLE)
    yield client
    client.close()


@pytest.fixture
def ses(moto: str) -> Iterator[SESClient]:
    client = aws_session().client("ses", endpoint_url=moto)
    client.verify_email_identity(EmailAddress=SENDER)  # moto serves from its own thread
    yield client
    client.close()


@pytest.fixture
def sesv2(moto: str, ses: SESClient) -> Iterator[SESV2Client]:
    client = aws_session().client("sesv2", endpoint_url=moto)
    yield client
    client.close()


@pytest.fixture
def sqs(moto: str) -> Iterator[SQSClient]:
    client = aws_session().client("sqs", endpoint_url=moto)
    yield client
    client.close()


@pytest.fixture
def lambda_client(moto: str) -> Iterator[LambdaClient]:
    client = aws_session().client("lambda", endpoint_url=moto)
    yield client
    client.close()


@pytest.fixture
def lambda_role(moto: str) -> str:
    iam = aws_session().client("iam", endpoint_url=moto)
    role: str = iam.create_role(RoleName="runner", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    iam.close()
    assert role == f"arn:aws:iam::{ACCOUNT_ID}:role/runner"
    return role


async def test_s3_put_get_delete_record_sizes_on_an_instrumented_session(
    moto: str, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    def calls() -> None:
        session = aws_session()
        instrument_aws(session, telemetry=telemetry)  # before the client exists
        s3 = session.client("s3", endpoint_url=moto, config=PATH_STYLE)
        s3.create_bucket(Bucket="media")
        s3.put_object(
            Bucket="media", Key="notes.txt", Body=cases.NOTES_TEXT, ContentType="text/plain"
        )
        s3.put_object(Bucket="media", Key="audio.bin", Body=cases.audio_stream())
        got = s3.get_object(Bucket="media", Key="audio.bin")
        assert len(got["Body"].read()) == cases.AUDIO_BYTES
        s3.delete_object(Bucket="media", Key="notes.txt")

    await asyncio.to_thread(calls)
    cases.check_s3_put_get_delete(await recorded(telemetry, db))


async def test_s3_bulk_delete_counts_only_the_keys_deleted(
    s3: S3Client, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    def calls() -> None:
        s3.create_bucket(Bucket="vault", ObjectLockEnabledForBucket=True)
        for key in ("a.txt", "b.txt"):
            s3.put_object(Bucket="vault", Key=key, Body=b"1")
        held = s3.put_object(
            Bucket="vault", Key="held.txt", Body=b"1", ObjectLockLegalHoldStatus="ON"
        )
        held_version: ObjectIdentifierTypeDef = {
            "Key": "held.txt",
            "VersionId": held["VersionId"],
        }
        instrument_aws(s3, telemetry=telemetry)

        loud = s3.delete_objects(
            Bucket="vault", Delete={"Objects": [{"Key": "a.txt"}, {"Key": "b.txt"}, held_version]}
        )
        assert [error["Key"] for error in loud["Errors"]] == ["held.txt"]  # moto refused one
        with Stubber(s3) as stub:
            stub.add_response("delete_objects", cases.quiet_delete_reply(held["VersionId"]))
            s3.delete_objects(
                Bucket="vault",
                Delete={"Objects": [{"Key": "c.txt"}, held_version], "Quiet": True},
            )

    await asyncio.to_thread(calls)
    cases.check_bulk_deletes(await recorded(telemetry, db))


async def test_failed_calls_record_nothing(
    s3: S3Client,
    ses: SESClient,
    sqs: SQSClient,
    telemetry: TelemetryClient,
    db: asyncpg.Pool,
) -> None:
    def calls() -> None:
        for client in (s3, ses, sqs):
            instrument_aws(client, telemetry=telemetry)
        s3.create_bucket(Bucket="media")
        with pytest.raises(ClientError, match="NoSuchKey"):
            s3.get_object(Bucket="media", Key="missing")
        with pytest.raises(ClientError, match="MessageRejected"):
            ses.send_email(
                Source="stranger@example.com",  # not verified
                Destination={"ToAddresses": ["a@example.com"]},
                Message=cases.HELLO,
            )
        with pytest.raises(ClientError, match="NonExistentQueue"):
            sqs.send_message(
                QueueUrl=f"{sqs.meta.endpoint_url}/{ACCOUNT_ID}/nowhere", MessageBody="x"
            )
        s3.put_object(Bucket="media", Key="ok.txt", Body=b"ok")

    await asyncio.to_thread(calls)
    cases.check_only_the_put(await recorded(telemetry, db))


async def test_ses_v1_sends_count_every_recipient(
    ses: SESClient, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    def calls() -> str:
        instrument_aws(ses, telemetry=telemetry)
        sent = ses.send_email(Source=SENDER, Destination=cases.FOUR_RECIPIENTS, Message=cases.HELLO)
        ses.send_raw_email(RawMessage={"Data": cases.RAW_TO_THREE})
        ses.create_template(Template=cases.WELCOME)
        ses.send_templated_email(
            Source=SENDER,
            Destination={"ToAddresses": ["a@example.com", "b@example.com"]},
            Template="welcome",
            TemplateData='{"name": "Ann"}',
        )
        ses.send_bulk_templated_email(
            Source=SENDER,
            Template="welcome",
            DefaultTemplateData='{"name": "you"}',
            Destinations=cases.BULK_TO_THREE,
        )
        return sent["MessageId"]

    message_id = await asyncio.to_thread(calls)
    cases.check_ses_v1_sends(await recorded(telemetry, db), message_id)


async def test_sesv2_send_email_counts_recipients(
    sesv2: SESV2Client, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    def calls() -> None:
        instrument_aws(sesv2, telemetry=telemetry)
        sesv2.send_email(
            FromEmailAddress=SENDER,
            Destination=cases.THREE_RECIPIENTS,
            Content={"Simple": cases.HELLO_V2},
        )
        sesv2.send_email(FromEmailAddress=SENDER, Content={"Raw": {"Data": cases.RAW_TO_TWO}})

    await asyncio.to_thread(calls)
    cases.check_sesv2_sends(await recorded(telemetry, db))


async def test_ses_bulk_sends_count_only_destinations_that_succeeded(
    ses: SESClient, sesv2: SESV2Client, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    def calls() -> None:
        instrument_aws(ses, telemetry=telemetry)
        instrument_aws(sesv2, telemetry=telemetry)
        with Stubber(ses) as stub:
            for reply in cases.BULK_V1_REPLIES:
                stub.add_response("send_bulk_templated_email", reply)
            ses.send_bulk_templated_email(
                Source=SENDER,
                Template="welcome",
                DefaultTemplateData="{}",
                Destinations=cases.BULK_DESTINATIONS,
            )
            ses.send_bulk_templated_email(
                Source=SENDER,
                Template="welcome",
                DefaultTemplateData="{}",
                Destinations=cases.BULK_DESTINATIONS[:1],
            )
        with Stubber(sesv2) as stub:
            stub.add_response("send_bulk_email", cases.BULK_V2_REPLY)
            sesv2.send_bulk_email(
                FromEmailAddress=SENDER,
                DefaultContent={"Template": {"TemplateName": "welcome", "TemplateData": "{}"}},
                BulkEmailEntries=cases.BULK_ENTRIES,
            )

    await asyncio.to_thread(calls)
    cases.check_ses_bulk_failures(await recorded(telemetry, db))


async def test_sqs_counts_messages_and_only_successful_batch_entries(
    sqs: SQSClient, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    def calls() -> str:
        queue = sqs.create_queue(QueueName="jobs")["QueueUrl"]
        instrument_aws(sqs, telemetry=telemetry)
        sqs.send_message(QueueUrl=queue, MessageBody="héllo")
        reply = sqs.send_message_batch(QueueUrl=queue, Entries=cases.BATCH_OF_THREE)
        assert [entry["Id"] for entry in reply["Failed"]] == ["late"]  # moto refused one
        none_sent = sqs.send_message_batch(QueueUrl=queue, Entries=[cases.TOO_LATE])
        assert "Successful" not in none_sent or not none_sent["Successful"]
        return queue

    queue = await asyncio.to_thread(calls)
    cases.check_sqs_sends(await recorded(telemetry, db), queue)


async def test_lambda_invoke_measures_duration_and_looks_memory_up_once(
    lambda_client: LambdaClient, lambda_role: str, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    def calls() -> str:
        lambda_client.create_function(**cases.function_spec(lambda_role, "transcode", 512))
        instrument_aws(lambda_client, telemetry=telemetry)  # the memory size not yet seen
        lookups = cases.calls_seen(lambda_client, "GetFunctionConfiguration")
        for _ in range(2):
            reply = lambda_client.invoke(FunctionName="transcode", Payload=b'{"n": 1}')
            assert reply["Payload"].read() == b'{"n": 1}'
        queued = lambda_client.invoke(FunctionName="transcode", InvocationType="Event")
        dry = lambda_client.invoke(FunctionName="transcode", InvocationType="DryRun")
        assert (queued["StatusCode"], dry["StatusCode"]) == (202, 204)
        assert lookups == ["GetFunctionConfiguration"]  # once, then cached; not recorded
        return queued["ResponseMetadata"]["RequestId"]

    event_request_id = await asyncio.to_thread(calls)
    cases.check_invokes_measured(await recorded(telemetry, db), event_request_id)


async def test_lambda_memory_comes_from_create_and_update_replies(
    lambda_client: LambdaClient, lambda_role: str, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    def calls() -> None:
        instrument_aws(lambda_client, telemetry=telemetry)
        lookups = cases.calls_seen(lambda_client, "GetFunctionConfiguration")
        lambda_client.create_function(**cases.function_spec(lambda_role, "thumbnail", 1024))
        lambda_client.invoke(FunctionName="thumbnail")
        lambda_client.update_function_configuration(FunctionName="thumbnail", MemorySize=2048)
        lambda_client.invoke(FunctionName="thumbnail")
        assert lookups == []

    await asyncio.to_thread(calls)
    cases.check_memory_from_replies(await recorded(telemetry, db))


async def test_lambda_tail_log_gives_billed_duration_and_memory(
    lambda_client: LambdaClient, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    def calls() -> None:
        instrument_aws(lambda_client, telemetry=telemetry)
        lookups = cases.calls_seen(lambda_client, "GetFunctionConfiguration")
        with Stubber(lambda_client) as stub:
            stub.add_response("invoke", cases.TAIL_LOG_REPLY)
            lambda_client.invoke(FunctionName="resize", LogType="Tail")
        assert lookups == []

    await asyncio.to_thread(calls)
    cases.check_tail_log(await recorded(telemetry, db))


async def test_events_are_attributed_to_the_current_user_context(
    s3: S3Client, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    def calls() -> None:
        s3.create_bucket(Bucket="media")
        instrument_aws(s3, telemetry=telemetry)
        with user_context(cases.EPISODE):
            s3.put_object(Bucket="media", Key="ep-42.mp3", Body=b"ID3")
        s3.delete_object(Bucket="media", Key="ep-42.mp3")  # outside any context

    await asyncio.to_thread(calls)
    cases.check_attribution(await recorded(telemetry, db))


async def test_instrumenting_twice_records_each_call_once(
    moto: str, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    def calls() -> None:
        core = botocore.session.get_session()  # a botocore session, and boto3's over it
        instrument_aws(core, telemetry=telemetry)
        session = boto3.Session(
            botocore_session=core,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )
        instrument_aws(session, telemetry=telemetry)
        instrument_aws(session, telemetry=telemetry)
        sqs = session.client("sqs", endpoint_url=moto)
        instrument_aws(sqs, telemetry=telemetry)
        queue = sqs.create_queue(QueueName="once")["QueueUrl"]
        sqs.send_message(QueueUrl=queue, MessageBody="x")

    await asyncio.to_thread(calls)
    cases.check_recorded_once(await recorded(telemetry, db))


async def test_a_botocore_client_is_instrumented_too(
    moto: str, telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    def calls() -> None:
        core = botocore.session.get_session()
        client = core.create_client(
            "sqs",
            region_name=REGION,
            endpoint_url=moto,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )
        sqs = cast("SQSClient", client)  # botocore's own clients are untyped
        instrument_aws(sqs, telemetry=telemetry)
        queue = sqs.create_queue(QueueName="plain")["QueueUrl"]
        sqs.send_message(QueueUrl=queue, MessageBody="x")

    await asyncio.to_thread(calls)
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
    def calls() -> None:
        for client in (s3, ses, sqs, lambda_client):
            instrument_aws(client, telemetry=telemetry)
        s3.create_bucket(Bucket="media")
        s3.put_object(Bucket="media", Key="ep.mp3", Body=cases.ONE_MIB)
        s3.get_object(Bucket="media", Key="ep.mp3")["Body"].read()
        s3.delete_object(Bucket="media", Key="ep.mp3")
        ses.send_email(
            Source=SENDER, Destination={"ToAddresses": ["a@x.io", "b@x.io"]}, Message=cases.HELLO
        )
        queue = sqs.create_queue(QueueName="jobs")["QueueUrl"]
        sqs.send_message_batch(
            QueueUrl=queue, Entries=[{"Id": str(i), "MessageBody": "x" * 100} for i in range(3)]
        )
        with Stubber(lambda_client) as stub:
            stub.add_response("invoke", cases.PRICED_INVOKE_REPLY)
            lambda_client.invoke(FunctionName="resize", LogType="Tail")

    await asyncio.to_thread(calls)
    await cases.check_priced_by_the_rollup(telemetry, db)


async def test_telemetry_failures_never_break_the_aws_call(
    s3: S3Client, telemetry_addr: str, caplog: pytest.LogCaptureFixture
) -> None:
    broken = cases.UnreachableTelemetry(telemetry_addr)

    def calls() -> bytes:
        s3.create_bucket(Bucket="media")
        instrument_aws(s3, telemetry=broken)
        s3.put_object(Bucket="media", Key="a.txt", Body=b"abc")
        return s3.get_object(Bucket="media", Key="a.txt")["Body"].read()

    with caplog.at_level(logging.ERROR):
        assert await asyncio.to_thread(calls) == b"abc"
    cases.check_telemetry_failures_logged(
        [r.message for r in caplog.records if r.name.startswith("costguard")]
    )
    await broken.close()


_COLLECTING = """
import sys
sys.modules[{blocked!r}] = None  # as if it were not installed
from costguard.sdk import TelemetryClient
from costguard.sdk.aws import instrument_aws

class Collecting(TelemetryClient):
    def emit(self, event):
        print(event.cost.event_type, event.cost.service, flush=True)

telemetry = Collecting("127.0.0.1:1")
keys = dict(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
"""
_BOTO3_ALONE = """
import boto3
from botocore.stub import Stubber

session = boto3.Session(**keys)
instrument_aws(session, telemetry=telemetry)
s3 = session.client("s3")
with Stubber(s3) as stub:
    stub.add_response("put_object", {})
    s3.put_object(Bucket="media", Key="a.txt", Body=b"a")
"""
_AIOBOTOCORE_ALONE = """
import asyncio
from aiobotocore.session import AioSession
from aiobotocore.stub import AioStubber

async def main():
    session = AioSession()
    instrument_aws(session, telemetry=telemetry)
    async with session.create_client("s3", **keys) as s3:
        with AioStubber(s3) as stub:
            stub.add_response("put_object", {})
            await s3.put_object(Bucket="media", Key="a.txt", Body=b"a")

asyncio.run(main())
"""


@pytest.mark.parametrize(
    ("blocked", "program"),
    [("aiobotocore", _BOTO3_ALONE), ("boto3", _AIOBOTOCORE_ALONE)],
    ids=["boto3-alone", "aiobotocore-alone"],
)
async def test_either_library_alone_is_enough(blocked: str, program: str) -> None:
    script = _COLLECTING.format(blocked=blocked) + program
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await child.communicate()
    assert child.returncode == 0
    assert out == b"s3_operation s3_put\n"
