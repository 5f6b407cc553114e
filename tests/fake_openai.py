"""A small fake of the OpenAI HTTP API, served by uvicorn on a free loopback port.

Enough of ``POST /v1/chat/completions``, ``/v1/responses``, ``/v1/embeddings``,
``/v1/images/generations``, ``/v1/audio/speech`` and ``/v1/audio/transcriptions`` for the
real ``openai.AsyncOpenAI`` client to run unmodified: JSON replies, SSE streams in the wire
format the API uses (chat: ``data:`` chunks then ``data: [DONE]``; responses: typed
``event:`` lines ending in ``response.completed``), audio bytes, multipart uploads,
scripted usage (cached and reasoning tokens included), scripted HTTP failures with
OpenAI-style error bodies, streams that end without their usage (``stream_usage``), that
stall (``stall_after``: the client's read timeout fires) or are cut mid-body
(``cut_after``: the connection closes without the end of the chunked body), and a request
that never answers. Every request it receives is kept in ``requests``.

async with serve_fake_openai() as fake:
    client = AsyncOpenAI(base_url=fake.base_url, api_key="test", max_retries=0)
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import socket
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

CREATED = 1_767_225_600  # fixed, so that two runs of one script give identical chunks

ERROR_BODIES: dict[int, dict[str, Any]] = {
    429: {
        "message": "Rate limit reached for requests. Please try again in 1s.",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    },
    500: {
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error",
        "param": None,
        "code": None,
    },
}


@dataclass
class ScriptedUsage:
    """What the fake reports, in the API's own terms (cached within input, reasoning
    within output)."""

    input_tokens: int = 1200
    cached_input_tokens: int = 1024
    output_tokens: int = 300
    reasoning_tokens: int = 128

    def chat(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.input_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_input_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": self.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def responses(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": self.cached_input_tokens},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": self.input_tokens + self.output_tokens,
        }


@dataclass(frozen=True)
class ReceivedRequest:
    path: str
    body: dict[str, Any]


@dataclass
class FakeOpenAI:
    """The script the fake follows and what it has seen; tests change fields between calls."""

    model: str = "gpt-4o-mini-2024-07-18"  # what responses report, whatever was requested
    text: str = "Spend is down twelve percent this week."
    usage: ScriptedUsage = field(default_factory=ScriptedUsage)
    stream_usage: bool = True  # False: a stream ends without its usage (chat: no usage
    # chunk; responses: response.completed reports none)
    stall_after: int | None = None  # frames sent, then the stream waits until stopped
    cut_after: int | None = None  # frames sent, then the connection is dropped
    embedding_model: str = "text-embedding-3-small"
    embedding_tokens: int = 8
    transcript: str = "Welcome back to the show."
    transcript_seconds: float = 42.5  # the duration a verbose_json transcription reports
    chunk_interval_s: float = 0.0  # pause between streamed pieces, as a real model takes
    hang: bool = False  # True: requests are never answered (until the server stops)
    requests: list[ReceivedRequest] = field(default_factory=list)
    port: int = 0
    _failures: deque[int] = field(default_factory=deque)
    _released: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop_hanging(self) -> None:
        """Let requests held by ``hang`` finish."""
        self._released.set()

    def fail_next(self, status: int, *, times: int = 1) -> None:
        """Answer the next ``times`` requests with ``status`` and an OpenAI error body."""
        self._failures.extend([status] * times)

    def pieces(self) -> list[str]:
        words = self.text.split(" ")
        return [words[0], *(f" {word}" for word in words[1:])]

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/responses", self._responses, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
                Route("/v1/images/generations", self._images, methods=["POST"]),
                Route("/v1/audio/speech", self._speech, methods=["POST"]),
                Route("/v1/audio/transcriptions", self._transcriptions, methods=["POST"]),
            ]
        )

    async def _receive(self, request: Request) -> tuple[dict[str, Any], Response | None]:
        kind = request.headers.get("content-type", "")
        body: dict[str, Any]
        if kind.startswith("multipart/form-data"):
            body = multipart_fields(kind, await request.body())
        else:
            body = await request.json()
        self.requests.append(ReceivedRequest(request.url.path, body))
        if self.hang:
            await self._released.wait()
        if self._failures:
            status = self._failures.popleft()
            return body, JSONResponse({"error": ERROR_BODIES[status]}, status_code=status)
        return body, None

    async def _chat(self, request: Request) -> Response:
        body, failure = await self._receive(request)
        if failure is not None:
            return failure
        if not body.get("stream"):
            return JSONResponse(self._chat_completion())
        asked = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(
            self._sse(self._chat_chunks(asked=asked, send_usage=asked and self.stream_usage)),
            media_type="text/event-stream",
        )

    async def _responses(self, request: Request) -> Response:
        body, failure = await self._receive(request)
        if failure is not None:
            return failure
        if not body.get("stream"):
            return JSONResponse(self._response("completed"))
        return StreamingResponse(self._sse(self._response_events()), media_type="text/event-stream")

    async def _embeddings(self, request: Request) -> Response:
        body, failure = await self._receive(request)
        if failure is not None:
            return failure
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": [0.25, -0.5, 0.125]}
            for i in range(len(inputs))
        ]
        usage = {"prompt_tokens": self.embedding_tokens, "total_tokens": self.embedding_tokens}
        return JSONResponse(
            {"object": "list", "data": data, "model": self.embedding_model, "usage": usage}
        )

    async def _images(self, request: Request) -> Response:
        body, failure = await self._receive(request)
        if failure is not None:
            return failure
        reply: dict[str, Any] = {
            "created": CREATED,
            "data": [{"b64_json": "iVBORw0KGgo="} for _ in range(body.get("n") or 1)],
        }
        if str(body.get("model", "")).startswith("gpt-image"):
            # GPT Image says what it made; "auto" (or nothing) chose these
            reply["size"] = body["size"] if body.get("size", "auto") != "auto" else "1024x1536"
            reply["quality"] = body["quality"] if body.get("quality", "auto") != "auto" else "high"
            reply["usage"] = {
                "input_tokens": 20,
                "input_tokens_details": {"image_tokens": 0, "text_tokens": 20},
                "output_tokens": 4160,
                "total_tokens": 4180,
            }
        return JSONResponse(reply)

    async def _speech(self, request: Request) -> Response:
        _, failure = await self._receive(request)
        if failure is not None:
            return failure
        return Response(b"ID3" + bytes(2045), media_type="audio/mpeg")

    async def _transcriptions(self, request: Request) -> Response:
        body, failure = await self._receive(request)
        if failure is not None:
            return failure
        response_format = body.get("response_format", "json")
        if response_format == "text":
            return Response(self.transcript, media_type="text/plain")
        if response_format == "verbose_json":
            return JSONResponse(
                {
                    "task": "transcribe",
                    "language": "english",
                    "duration": self.transcript_seconds,
                    "text": self.transcript,
                    "segments": [],
                    "usage": {"type": "duration", "seconds": math.ceil(self.transcript_seconds)},
                }
            )
        usage = {
            "type": "tokens",
            "input_tokens": 90,
            "output_tokens": 12,
            "total_tokens": 102,
            "input_token_details": {"audio_tokens": 90, "text_tokens": 0},
        }
        return JSONResponse({"text": self.transcript, "usage": usage})

    async def _sse(self, frames: Iterator[tuple[str | None, str]]) -> AsyncIterator[bytes]:
        for number, (event, data) in enumerate(frames):
            if number == self.stall_after:
                await self._released.wait()
            if number == self.cut_after:
                raise ConnectionAbortedError("the fake drops the connection mid-stream")
            if number and self.chunk_interval_s:
                await asyncio.sleep(self.chunk_interval_s)
            head = f"event: {event}\n" if event else ""
            yield f"{head}data: {data}\n\n".encode()

    def _chat_completion(self) -> dict[str, Any]:
        message = {"role": "assistant", "content": self.text, "refusal": None}
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": CREATED,
            "model": self.model,
            "system_fingerprint": "fp_fake",
            "choices": [
                {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
            ],
            "usage": self.usage.chat(),
        }

    def _chat_chunks(self, *, asked: bool, send_usage: bool) -> Iterator[tuple[None, str]]:
        def chunk(choices: list[dict[str, Any]], usage: dict[str, Any] | None) -> str:
            frame: dict[str, Any] = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": self.model,
                "system_fingerprint": "fp_fake",
                "choices": choices,
            }
            if asked:  # the API sends "usage": null on every chunk once usage is asked
                frame["usage"] = usage
            return json.dumps(frame)

        def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}

        yield None, chunk([choice({"role": "assistant", "content": ""})], None)
        for piece in self.pieces():
            yield None, chunk([choice({"content": piece})], None)
        yield None, chunk([choice({}, "stop")], None)
        if send_usage:
            yield None, chunk([], self.usage.chat())
        yield None, "[DONE]"

    def _response(self, status: str) -> dict[str, Any]:
        done = status == "completed"
        content = [{"type": "output_text", "text": self.text, "annotations": []}]
        message = {
            "type": "message",
            "id": "msg_fake",
            "status": "completed",
            "role": "assistant",
            "content": content,
        }
        return {
            "id": "resp_fake",
            "object": "response",
            "created_at": CREATED,
            "status": status,
            "model": self.model,
            "output": [message] if done else [],
            "usage": self.usage.responses() if done and self.stream_usage else None,
            "error": None,
            "incomplete_details": None,
            "instructions": None,
            "metadata": {},
            "parallel_tool_calls": True,
            "temperature": 1.0,
            "tool_choice": "auto",
            "tools": [],
            "top_p": 1.0,
        }

    def _response_events(self) -> Iterator[tuple[str, str]]:
        sequence = itertools.count()

        def event(kind: str, **fields: Any) -> tuple[str, str]:
            return kind, json.dumps({"type": kind, "sequence_number": next(sequence), **fields})

        where = {"item_id": "msg_fake", "output_index": 0, "content_index": 0}
        yield event("response.created", response=self._response("in_progress"))
        yield event("response.in_progress", response=self._response("in_progress"))
        item = {"type": "message", "id": "msg_fake", "status": "in_progress",
                "role": "assistant", "content": []}  # fmt: skip
        yield event("response.output_item.added", output_index=0, item=item)
        part = {"type": "output_text", "text": "", "annotations": []}
        yield event("response.content_part.added", part=part, **where)
        for piece in self.pieces():
            yield event("response.output_text.delta", delta=piece, logprobs=[], **where)
        yield event("response.output_text.done", text=self.text, logprobs=[], **where)
        yield event("response.content_part.done", part={**part, "text": self.text}, **where)
        done = self._response("completed")["output"][0]
        yield event("response.output_item.done", output_index=0, item=done)
        yield event("response.completed", response=self._response("completed"))


def multipart_fields(content_type: str, raw: bytes) -> dict[str, Any]:
    """The fields of a multipart/form-data body: text as str, a file as its bytes."""
    boundary = content_type.split("boundary=", 1)[1].strip('"').encode()
    fields: dict[str, Any] = {}
    for part in raw.split(b"--" + boundary)[1:]:
        if part.startswith(b"--"):
            break
        head, _, value = part.strip(b"\r\n").partition(b"\r\n\r\n")
        name = head.split(b'name="', 1)[1].split(b'"', 1)[0].decode()
        fields[name] = value if b"filename=" in head else value.decode()
    return fields


@asynccontextmanager
async def serve_fake_openai() -> AsyncIterator[FakeOpenAI]:
    """Run a fresh fake on a free loopback port for the length of the block."""
    fake = FakeOpenAI()
    # Listening before uvicorn starts means the first request simply waits in the
    # backlog: no polling for readiness.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    fake.port = sock.getsockname()[1]
    config = uvicorn.Config(fake.app(), lifespan="off", ws="none", http="h11", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield fake
    finally:
        fake.stop_hanging()
        server.should_exit = True
        await task
        sock.close()
