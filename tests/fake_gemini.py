"""A small fake of the Gemini REST API (Developer API and Vertex AI), served by uvicorn on a
free loopback port from a thread of its own.

Enough of ``POST .../models/{model}:generateContent``, ``:streamGenerateContent?alt=sse``,
``:embedContent``, ``:batchEmbedContents`` and ``:predict`` (Imagen, and Vertex AI's text
embeddings) for the real ``google.genai.Client`` to run unmodified, in the URL forms it
uses: ``/v1/models/{model}:...`` for the Developer API,
``/v1beta1/projects/{project}/locations/{location}/publishers/google/models/{model}:...``
for Vertex AI (``/v1beta1/publishers/google/models/{model}:...`` in express mode). Replies
are in the API's own JSON (camelCase); streams are server-sent events (``data: {...}`` and
a blank line per chunk) with cumulative ``usageMetadata`` on every chunk, or, with
``usage_only_final``, partial readings and a last chunk that carries only the usage.

Scripted: the usage (cached, thinking and tool-use prompt tokens); a call of the first
function the request declares, until the request carries its result (automatic function
calling); image output (an inline PNG and an IMAGE entry in ``candidatesTokensDetails``
when ``responseModalities`` asks for images); speech (an inline PCM part and an AUDIO
entry when it asks for audio); HTTP failures with Google-style error bodies (429
RESOURCE_EXHAUSTED, 500 INTERNAL); a stream cut mid-body (``cut_after``: the connection
closes without the end of the chunked body); a stall (``stall_after`` chunks, or ``hang``
before answering: the client's timeout fires). Every request received is kept in
``requests``.

The sync client blocks its caller's event loop while it waits for an answer, so the fake
serves from its own thread and loop, never the test's.

with serve_fake_gemini() as fake:
    client = genai.Client(api_key="test", http_options=types.HttpOptions(base_url=fake.base_url))
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(24)).decode()
PCM = base64.b64encode(bytes(480)).decode()  # 10 ms of 24 kHz 16-bit silence
ERROR_BODIES: dict[int, dict[str, Any]] = {
    429: {
        "code": 429,
        "message": "Resource has been exhausted (e.g. check quota).",
        "status": "RESOURCE_EXHAUSTED",
    },
    500: {
        "code": 500,
        "message": "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
        "status": "INTERNAL",
    },
}


@dataclass
class ScriptedUsage:
    """What the fake reports, in the API's terms: the prompt includes the cached content;
    the candidates include generated images; thoughts and tool-use prompt tokens are
    counted apart."""

    prompt_tokens: int = 1200
    cached_tokens: int = 1024
    candidates_tokens: int = 300
    thoughts_tokens: int = 128
    tool_use_prompt_tokens: int = 0

    def metadata(
        self, *, candidates: int | None = None, details: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        """``usageMetadata``; ``candidates`` for a partial reading of a stream."""
        out = self.candidates_tokens if candidates is None else candidates
        reading: dict[str, Any] = {
            "promptTokenCount": self.prompt_tokens,
            "candidatesTokenCount": out,
            "totalTokenCount": self.prompt_tokens
            + out
            + self.thoughts_tokens
            + self.tool_use_prompt_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": self.prompt_tokens}],
            "candidatesTokensDetails": details or [{"modality": "TEXT", "tokenCount": out}],
        }
        if self.cached_tokens:
            reading["cachedContentTokenCount"] = self.cached_tokens
            reading["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": self.cached_tokens}]
        if self.thoughts_tokens:
            reading["thoughtsTokenCount"] = self.thoughts_tokens
        if self.tool_use_prompt_tokens:
            reading["toolUsePromptTokenCount"] = self.tool_use_prompt_tokens
        return reading


@dataclass(frozen=True)
class ReceivedRequest:
    path: str  # e.g. /v1/models/gemini-2.5-flash:generateContent
    model: str  # gemini-2.5-flash
    method: str  # generateContent
    query: str
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class FakeGemini:
    """The script the fake follows and what it has seen; tests change fields between calls."""

    text: str = "Spend is down twelve percent this week."
    usage: ScriptedUsage = field(default_factory=ScriptedUsage)
    image_tokens: int = 1290  # of the candidates, when the request asks for images
    usage_only_final: bool = False  # a stream's totals come in a last chunk of their own
    cut_after: int | None = None  # stream chunks sent, then the connection is dropped
    stall_after: int | None = None  # stream chunks sent, then the stream waits until released
    hang: bool = False  # requests are not answered until released (or the server stops)
    embedding_tokens: int = 7  # per text, where the API reports them (Vertex AI)
    requests: list[ReceivedRequest] = field(default_factory=list)
    port: int = 0
    _failures: deque[int] = field(default_factory=deque)
    _loop: asyncio.AbstractEventLoop | None = None
    _released: asyncio.Event | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def fail_next(self, status: int, *, times: int = 1) -> None:
        """Answer the next ``times`` requests with ``status`` and a Google error body."""
        self._failures.extend([status] * times)

    def stop_hanging(self) -> None:
        """Let requests and streams held by ``hang`` or ``stall_after`` go on."""
        if self._loop is not None and self._released is not None:
            self._loop.call_soon_threadsafe(self._released.set)

    def pieces(self) -> list[str]:
        words = self.text.split(" ")
        return [words[0], *(f" {word}" for word in words[1:])]

    def app(self) -> Starlette:
        vertex = "/{version}/projects/{project}/locations/{location}/publishers/{publisher}"
        return Starlette(
            routes=[
                Route(f"{prefix}/models/{{target}}", self._serve, methods=["POST"])
                for prefix in ("/{version}", vertex, "/{version}/publishers/{publisher}")
            ]
        )

    async def _serve(self, request: Request) -> Response:
        model, _, method = request.path_params["target"].partition(":")
        body: dict[str, Any] = await request.json()
        self.requests.append(
            ReceivedRequest(
                request.url.path, model, method, request.url.query, body, dict(request.headers)
            )
        )
        if self.hang:
            await self._wait()
        if self._failures:
            status = self._failures.popleft()
            return JSONResponse({"error": ERROR_BODIES[status]}, status_code=status)
        if method == "streamGenerateContent":
            return StreamingResponse(self._sse(model, body), media_type="text/event-stream")
        if method == "predict" and model.startswith("imagen"):
            method = "predictImages"
        answer = {
            "generateContent": self._whole,
            "batchEmbedContents": self._embeddings,
            "embedContent": self._embedding,
            "predictImages": self._images,
            "predict": self._vertex_embeddings,
        }.get(method)
        if answer is None:
            return JSONResponse({"error": {"code": 404, "status": "NOT_FOUND"}}, status_code=404)
        return JSONResponse(answer(model, body))

    async def _wait(self) -> None:
        assert self._released is not None
        await self._released.wait()

    def _modalities(self, body: dict[str, Any]) -> list[str]:
        config = body.get("generationConfig") or {}
        return [str(m).upper() for m in config.get("responseModalities") or []]

    def _output(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The parts of the whole answer, and its candidates' breakdown by modality."""
        modalities, out = self._modalities(body), self.usage.candidates_tokens
        called = _function_to_call(body)
        if called is not None:  # the model asks for the function, then answers from its result
            return [{"functionCall": {"name": called, "args": {}}}], [
                {"modality": "TEXT", "tokenCount": out}
            ]
        if "AUDIO" in modalities:
            audio = {"inlineData": {"mimeType": "audio/L16;codec=pcm;rate=24000", "data": PCM}}
            return [audio], [{"modality": "AUDIO", "tokenCount": out}]
        if "IMAGE" in modalities:
            image = {"inlineData": {"mimeType": "image/png", "data": PNG}}
            details = [
                {"modality": "TEXT", "tokenCount": out - self.image_tokens},
                {"modality": "IMAGE", "tokenCount": self.image_tokens},
            ]
            return [{"text": self.text}, image], details
        return [{"text": self.text}], [{"modality": "TEXT", "tokenCount": out}]

    def _whole(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        parts, details = self._output(body)
        return {
            "candidates": [
                {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": self.usage.metadata(details=details),
            "modelVersion": model,
            "responseId": f"fake-{len(self.requests)}",
        }

    def _chunks(self, model: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        pieces, total = self.pieces(), self.usage.candidates_tokens
        _, details = self._output(body)
        for number, piece in enumerate(pieces):
            last = number == len(pieces) - 1
            candidate: dict[str, Any] = {
                "content": {"role": "model", "parts": [{"text": piece}]},
                "index": 0,
            }
            if last:
                candidate["finishReason"] = "STOP"
            chunk: dict[str, Any] = {
                "candidates": [candidate],
                "modelVersion": model,
                "responseId": "fake-stream",
            }
            if last and not self.usage_only_final:
                chunk["usageMetadata"] = self.usage.metadata(details=details)
            else:  # the running total so far
                chunk["usageMetadata"] = self.usage.metadata(
                    candidates=total * number // len(pieces)
                )
            yield chunk
        if self.usage_only_final:
            yield {
                "usageMetadata": self.usage.metadata(details=details),
                "modelVersion": model,
                "responseId": "fake-stream",
            }

    async def _sse(self, model: str, body: dict[str, Any]) -> AsyncIterator[bytes]:
        for number, chunk in enumerate(self._chunks(model, body)):
            if number == self.stall_after:
                await self._wait()
            if number == self.cut_after:
                raise ConnectionAbortedError("the fake drops the connection mid-stream")
            yield f"data: {json.dumps(chunk)}\r\n\r\n".encode()

    def _embeddings(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        return {"embeddings": [_vector() for _ in body["requests"]]}

    def _embedding(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "embedding": _vector(),
            "usageMetadata": {"promptTokenCount": self.embedding_tokens},
        }

    def _images(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        parameters = body.get("parameters") or {}
        count = int(parameters.get("sampleCount") or 4)
        predictions: list[dict[str, Any]] = [
            {"bytesBase64Encoded": PNG, "mimeType": "image/png"} for _ in range(count)
        ]
        if parameters.get("includeSafetyAttributes"):
            # The prompt's own safety attributes come as one more prediction, without an image.
            predictions.append(
                {
                    "contentType": "Positive Prompt",
                    "safetyAttributes": {"categories": ["Violence"], "scores": [0.1]},
                }
            )
        return {"predictions": predictions}

    def _vertex_embeddings(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        statistics = {"token_count": self.embedding_tokens, "truncated": False}
        predictions = [
            {"embeddings": {**_vector(), "statistics": statistics}} for _ in body["instances"]
        ]
        return {"predictions": predictions, "metadata": {"billableCharacterCount": 64}}


def _function_to_call(body: dict[str, Any]) -> str | None:
    """The first function the request declares, unless it already carries a result."""
    answered = any(
        "functionResponse" in part
        for content in body.get("contents") or []
        for part in content.get("parts") or []
    )
    declared = [
        declaration["name"]
        for tool in body.get("tools") or []
        for declaration in tool.get("functionDeclarations") or []
    ]
    return declared[0] if declared and not answered else None


def _vector() -> dict[str, Any]:
    return {"values": [0.25, -0.5, 0.125]}


@contextmanager
def serve_fake_gemini() -> Iterator[FakeGemini]:
    """Run a fresh fake on a free loopback port, in a thread of its own, for the block."""
    fake = FakeGemini()
    # Listening before uvicorn starts means the first request simply waits in the backlog.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    fake.port = sock.getsockname()[1]
    config = uvicorn.Config(fake.app(), lifespan="off", ws="none", http="h11", log_level="critical")
    server = uvicorn.Server(config)
    ready = threading.Event()

    async def run() -> None:
        fake._loop, fake._released = asyncio.get_running_loop(), asyncio.Event()
        ready.set()
        await server.serve(sockets=[sock])

    thread = threading.Thread(target=asyncio.run, args=(run(),), name="fake-gemini", daemon=True)
    thread.start()
    ready.wait()
    try:
        yield fake
    finally:
        fake.stop_hanging()
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        assert not thread.is_alive(), "the fake Gemini server did not stop"
