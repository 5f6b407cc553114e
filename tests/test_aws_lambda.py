"""``@metered`` Lambda handlers, invoked as the Lambda runtime invokes them.

The runtime calls a handler synchronously, on a thread with no event loop, with an event
dict and a context object; here that thread is ``asyncio.to_thread``'s, while the test's
loop serves the real telemetry service on loopback. Each invocation's event must be in
Postgres as soon as the handler has returned (Lambda may freeze the process right then),
so the rows are read at once, never polled for.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import signal
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import boto3
import pytest
from botocore.stub import Stubber
from mypy_boto3_lambda import LambdaClient

from costguard.devstack import free_port
from costguard.sdk import TelemetryClient, UserContext, track_cost_event
from costguard.sdk import aws_lambda as lambda_module
from costguard.sdk._spill import SpillFolder
from costguard.sdk.aws import instrument_aws
from costguard.sdk.aws_lambda import invocation_event_id, metered
from costguard.telemetry.config import TelemetryConfig
from costguard.telemetry.server import build_server
from tests import aws_cases as cases
from tests.moto_server import ACCESS_KEY, REGION, SECRET_KEY, reset_moto
from tests.processes import poll_until

ROOT = Path(__file__).resolve().parents[1]
Event = dict[str, Any]


@dataclass
class RuntimeContext:
    """What the Python runtime passes as ``context`` (``memory_limit_in_mb`` is a str)."""

    remaining_ms: int = 30_000
    function_name: str = "transcribe"
    function_version: str = "7"
    memory_limit_in_mb: str = "512"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    _deadline: float = field(init=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.remaining_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@pytest.fixture
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if in a new execution environment: the next invocation is a cold start."""
    monkeypatch.setattr(lambda_module, "_invocations", itertools.count())


async def invoke(handler: Callable[[Event, RuntimeContext], Any], event: Event, ctx: Any) -> Any:
    """The runtime's call: on a thread of its own, where no event loop runs."""
    return await asyncio.to_thread(handler, event, ctx)


async def invocations(db: asyncpg.Pool) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT event_id::text AS event_id, quantity, unit, metadata, user_id, tier"
        " FROM cost_events WHERE event_type = 'lambda_invocation' ORDER BY id"
    )
    return [dict(row) for row in rows]


async def test_an_invocation_is_stored_before_the_handler_returns(
    telemetry: TelemetryClient, db: asyncpg.Pool, fresh_process: None
) -> None:
    def for_whom(event: Event, _: RuntimeContext) -> UserContext:
        return UserContext(event["user"], "pro")

    @metered(telemetry=telemetry, user_ctx=for_whom)
    def handler(event: Event, context: RuntimeContext) -> dict[str, str]:
        track_cost_event("sqs_message", "sqs", 1, "messages", client=telemetry)  # its own
        time.sleep(0.05)  # the work
        return {"done": event["user"]}

    ctx = RuntimeContext()
    assert await invoke(handler, {"user": "u-1"}, ctx) == {"done": "u-1"}

    (row,) = await invocations(db)  # read at once: flushed before the handler returned
    metadata = row["metadata"]
    billed = metadata["billed_duration_ms"]
    assert metadata == {
        "function_name": "transcribe",
        "function_version": "7",
        "aws_request_id": ctx.aws_request_id,
        "memory_mb": 512,
        "duration_ms": metadata["duration_ms"],
        "billed_duration_ms": billed,
        "duration_seconds": billed / 1000,
        "gb_seconds": 0.5 * billed / 1000,
        "cold_start": True,
        "success": True,
        "error_code": "",
        "duration_source": "handler",
    }
    assert 50 <= metadata["duration_ms"] <= billed == math.ceil(metadata["duration_ms"])
    assert row["event_id"] == invocation_event_id(ctx.aws_request_id)
    assert (row["quantity"], row["unit"], row["user_id"], row["tier"]) == (
        1,
        "requests",
        "u-1",
        "pro",
    )
    # What the handler recorded itself is attributed to the same user, and delivered too.
    own = await db.fetchrow("SELECT user_id FROM cost_events WHERE event_type = 'sqs_message'")
    assert own is not None
    assert own["user_id"] == "u-1"
    assert handler.__name__ == "handler"


async def test_a_failing_handler_is_recorded_and_its_exception_re_raised_untouched(
    telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    raised: list[BaseException] = []

    @metered(telemetry=telemetry)
    def handler(event: Event, context: RuntimeContext) -> None:
        error = ValueError(f"bad input {event['n']}")
        raised.append(error)
        raise error

    with pytest.raises(ValueError, match="bad input 3") as caught:
        await invoke(handler, {"n": 3}, RuntimeContext())
    assert caught.value is raised[0]
    assert caught.traceback[-1].name == "handler"  # raised where the handler raised it

    (row,) = await invocations(db)
    assert (row["metadata"]["success"], row["metadata"]["error_code"]) == (False, "ValueError")
    assert row["metadata"]["billed_duration_ms"] >= 1


async def test_cold_start_is_the_first_invocation_of_the_process(
    telemetry: TelemetryClient, db: asyncpg.Pool, fresh_process: None
) -> None:
    handler = metered(telemetry=telemetry)(lambda event, context: event)
    for n in range(3):
        assert await invoke(handler, {"n": n}, RuntimeContext()) == {"n": n}
    assert [row["metadata"]["cold_start"] for row in await invocations(db)] == [
        True,
        False,
        False,
    ]


async def test_an_async_handler_runs_on_a_new_loop_per_invocation(
    telemetry: TelemetryClient, db: asyncpg.Pool
) -> None:
    @metered(telemetry=telemetry)
    async def handler(event: Event, context: RuntimeContext) -> int:
        await asyncio.sleep(0)
        track_cost_event("sqs_message", "sqs", event["n"], "messages", client=telemetry)
        return int(event["n"])

    for n in (1, 2):  # the second asyncio.run needs a channel of its own
        assert await invoke(handler, {"n": n}, RuntimeContext()) == n
        assert len(await invocations(db)) == n
    assert await db.fetchval("SELECT sum(quantity) FROM cost_events WHERE service = 'sqs'") == 3


async def _claim_one(folder: SpillFolder) -> Path:
    claimed: list[Path] = []

    async def one_claimed() -> bool:
        for path in folder.pending():
            mine = folder.claim(path)
            if mine is not None:
                claimed.append(mine)
                return True
        return False

    await poll_until(one_claimed)
    return claimed[0]


async def test_what_cannot_be_sent_in_time_is_spilled_and_sent_by_the_next_invocation(
    db: asyncpg.Pool, service_env: dict[str, str], own_spill_dir: Path
) -> None:
    port = free_port()  # nothing listens there yet
    client = TelemetryClient(f"127.0.0.1:{port}", max_backoff_s=0.2)
    handler = metered(telemetry=client)(lambda event, context: None)

    first = RuntimeContext(remaining_ms=1_800)  # leaves 0.3 s to flush
    started = time.monotonic()
    await invoke(handler, {}, first)
    assert time.monotonic() - started < first.remaining_ms / 1000  # returned in time
    # The client's shipper goes on trying the spill file (claiming it for a moment each
    # time): claim it too, to read it, and give it back for the next invocation to send.
    folder = SpillFolder(own_spill_dir)
    claimed = await _claim_one(folder)
    spilled = [
        event.cost.event_id for request in SpillFolder.read(claimed) for event in request.events
    ]
    folder.release(claimed)
    assert spilled == [invocation_event_id(first.aws_request_id)]
    assert client.buffered == 0  # nothing left in memory, nor in flight, at the freeze

    config = TelemetryConfig.from_env({**service_env, "GRPC_LISTEN": f"127.0.0.1:{port}"})
    server = await build_server(config)
    await server.start()
    try:
        second = RuntimeContext()
        await invoke(handler, {}, second)
        ids = [row["event_id"] for row in await invocations(db)]
        assert sorted(ids) == sorted(
            invocation_event_id(ctx.aws_request_id) for ctx in (first, second)
        )
        assert SpillFolder(own_spill_dir).pending() == []
        await client.close()
    finally:
        await server.stop()


# A Lambda execution environment: invoke, freeze (SIGSTOP) until thawed, twice. The
# telemetry address and the spill folder come from the environment, as in Lambda.
RUNTIME = textwrap.dedent(
    """
    import os, signal, uuid
    from costguard.sdk.aws_lambda import metered

    class Context:
        function_name, function_version, memory_limit_in_mb = "resize", "3", "1024"
        def __init__(self):
            self.aws_request_id = str(uuid.uuid4())
        def get_remaining_time_in_millis(self):
            return 30_000

    @metered
    def handler(event, context):
        return event

    for n in range(2):
        context = Context()
        handler({"n": n}, context)
        print("returned", context.aws_request_id, flush=True)
        os.kill(os.getpid(), signal.SIGSTOP)  # frozen until the test thaws it
    """
)


def _stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("T")


async def test_a_frozen_process_loses_nothing_and_survives_a_dead_connection(
    db: asyncpg.Pool, service_env: dict[str, str], own_spill_dir: Path
) -> None:
    port = free_port()
    config = TelemetryConfig.from_env({**service_env, "GRPC_LISTEN": f"127.0.0.1:{port}"})
    server = await build_server(config)
    await server.start()
    environment = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        RUNTIME,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "COSTGUARD_TELEMETRY_ADDR": f"127.0.0.1:{port}"},
    )
    try:
        assert environment.stdout is not None
        first = (await environment.stdout.readline()).split()[1].decode()
        assert [row["event_id"] for row in await invocations(db)] == [invocation_event_id(first)]

        async def frozen() -> bool:
            return _stopped(environment.pid)

        await poll_until(frozen)
        # While it is frozen the service goes away and comes back: the connection the
        # process holds is dead when it thaws.
        await server.stop()
        server = await build_server(config)
        await server.start()
        environment.send_signal(signal.SIGCONT)
        second = (await environment.stdout.readline()).split()[1].decode()
        rows = await invocations(db)
        assert [row["event_id"] for row in rows] == [
            invocation_event_id(first),
            invocation_event_id(second),
        ]
        assert [row["metadata"]["cold_start"] for row in rows] == [True, False]
        await poll_until(frozen)
        environment.send_signal(signal.SIGCONT)
        assert await environment.wait() == 0
    finally:
        if environment.returncode is None:
            environment.kill()
            await environment.wait()
        await server.stop()
    assert SpillFolder(own_spill_dir).pending() == []


class SilencingProxy:
    """A TCP proxy to the telemetry service that can silence the connections it carries:
    their bytes are taken and dropped, nothing is closed, as with a peer that vanished
    while this process was frozen. Connections made afterwards are carried as usual."""

    def __init__(self, upstream: str) -> None:
        self._upstream = upstream
        self._silenced: set[int] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._carry, "127.0.0.1", 0)
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def silence(self) -> None:
        self._silenced |= {id(writer) for writer in self._writers}

    async def _carry(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = self._upstream.rsplit(":", 1)
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        self._writers += [writer, up_writer]
        key = id(writer)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            while data := await source.read(65536):
                if key not in self._silenced:
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()


async def test_a_connection_that_died_silently_during_a_freeze_is_replaced(
    telemetry_addr: str, db: asyncpg.Pool, own_spill_dir: Path
) -> None:
    proxy = SilencingProxy(telemetry_addr)
    client = TelemetryClient(await proxy.start(), timeout_s=3600)  # no deadline to rescue it
    handler = metered(telemetry=client)(lambda event, context: None)
    contexts = [RuntimeContext(), RuntimeContext(remaining_ms=3_000), RuntimeContext()]
    try:
        await invoke(handler, {}, contexts[0])
        assert len(await invocations(db)) == 1
        proxy.silence()  # the connection the client holds now swallows everything

        started = time.monotonic()
        await invoke(handler, {}, contexts[1])  # its send hangs until the flush gives up
        assert 1.0 <= time.monotonic() - started < 3.0  # the flush had the 3 s less 1.5
        assert client.buffered == 0  # spilled, nothing left in flight

        await invoke(handler, {}, contexts[2])  # on a new connection: all three delivered
        ids = [row["event_id"] for row in await invocations(db)]
        assert sorted(ids) == sorted(invocation_event_id(c.aws_request_id) for c in contexts)
        assert SpillFolder(own_spill_dir).pending() == []
        await client.close()
    finally:
        await proxy.close()


@pytest.fixture
async def lambda_client(moto_server: str) -> AsyncIterator[LambdaClient]:
    await reset_moto(moto_server)
    session = boto3.Session(
        region_name=REGION, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY
    )
    client = session.client("lambda", endpoint_url=moto_server)
    yield client
    client.close()


async def test_the_callee_and_the_caller_of_one_invocation_are_stored_once(
    telemetry_addr: str, db: asyncpg.Pool, lambda_client: LambdaClient
) -> None:
    callee, caller = TelemetryClient(telemetry_addr), TelemetryClient(telemetry_addr)
    handler = metered(telemetry=callee)(lambda event, context: {"ok": True})
    ctx = RuntimeContext()
    await invoke(handler, {}, ctx)  # the function ran, and flushed, before the reply left

    def call() -> None:
        instrument_aws(lambda_client, telemetry=caller)
        with Stubber(lambda_client) as stub:
            metadata = {"RequestId": ctx.aws_request_id, "HTTPStatusCode": 200}
            stub.add_response("invoke", {"StatusCode": 200, "ResponseMetadata": metadata})
            stub.add_response("get_function_configuration", {"MemorySize": 512})
            lambda_client.invoke(FunctionName="transcribe", Payload=b"{}")

    await asyncio.to_thread(call)
    assert await caller.flush()
    (row,) = await invocations(db)
    assert row["metadata"]["duration_source"] == "handler"  # the first report is kept
    assert (callee.stats.stored, caller.stats.duplicate) == (1, 1)
    await callee.close()
    await caller.close()


async def test_an_event_invocation_keeps_the_callers_report(
    telemetry_addr: str, db: asyncpg.Pool, lambda_client: LambdaClient
) -> None:
    callee, caller = TelemetryClient(telemetry_addr), TelemetryClient(telemetry_addr)

    def call() -> str:
        iam = boto3.Session(
            region_name=REGION, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY
        ).client("iam", endpoint_url=lambda_client.meta.endpoint_url)
        role: str = iam.create_role(RoleName="runner", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        lambda_client.create_function(**cases.function_spec(role, "transcribe", 512))
        instrument_aws(lambda_client, telemetry=caller)
        reply = lambda_client.invoke(FunctionName="transcribe", InvocationType="Event")
        return reply["ResponseMetadata"]["RequestId"]

    request_id = await asyncio.to_thread(call)
    assert await caller.flush()  # the 202 came back at once; the function runs later
    handler = metered(telemetry=callee)(lambda event, context: None)
    await invoke(handler, {}, RuntimeContext(aws_request_id=request_id))

    (row,) = await invocations(db)  # one invocation, one request counted
    assert row["metadata"]["duration_source"] == "not_seen"  # its GB-seconds are lost
    assert (caller.stats.stored, callee.stats.duplicate) == (1, 1)
    await callee.close()
    await caller.close()
