"""The HTTP service of ``mcrf serve``: FastAPI routes over a ``MicroBatcher``, run by uvicorn.

Routes:

- ``POST /predict`` with ``{"text": "..."}``, ``{"texts": ["...", ...]}``, pre-tokenized
  ``{"tokens": [["w1", "w2"], ...]}``, or the Hugging Face inference body ``{"inputs": "..."}`` /
  ``{"inputs": ["...", ...]}`` (an alias of ``text``/``texts``; the answer keeps mcrf's shape)
  answers ``{"results": [record, ...]}``, one record per text
  (one text is one sentence, tokenized like a line of ``mcrf predict``), each record the one
  ``mcrf predict --format jsonl`` writes for that line.
- ``GET /health``, ``GET /info`` (labels, scheme, encoder, decoder, versions, limits), ``GET /stats``
  (micro-batch sizes served), ``GET /`` (the demo page), ``GET /docs`` (the routes and bodies, a page
  made here from the OpenAPI schema: no CDN, unlike FastAPI's Swagger page), ``GET /openapi.json``.

Bad input is answered and never reaches the model: a body over ``max_body`` bytes 413, invalid
UTF-8 400, malformed JSON or wrong types 422 naming the field, a text over ``max_words`` words 413,
an empty text an empty record. A full queue answers 503 with ``Retry-After``; a failure inside
the model 500 with a one-line message (the traceback is logged) and the server goes on.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from contextlib import asynccontextmanager
from typing import Any, Dict, List, Optional, Union

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.requests import ClientDisconnect
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from mcrf import __version__
from mcrf.data.text import tokenize_line
from mcrf.data.types import Sentence
from mcrf.predict.html import demo_page
from mcrf.serve.batcher import BatcherClosed, MicroBatcher, QueueFull
from mcrf.serve.config import ServeConfig
from mcrf.serve.docs import docs_page

__all__ = ["PredictRequest", "create_app", "serve", "bind"]

logger = logging.getLogger(__name__)


class PredictRequest(BaseModel):
    """The body of ``POST /predict``: exactly one of ``text``, ``texts``, ``tokens``, ``inputs``.

    ``inputs`` is the Hugging Face inference API's name: a string is ``text``, a list of strings ``texts``.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    text: Optional[str] = None
    texts: Optional[List[str]] = None
    tokens: Optional[List[List[str]]] = None
    inputs: Optional[Union[str, List[str]]] = None

    @field_validator("tokens")
    @classmethod
    def _words(cls, value: Optional[List[List[str]]]) -> Optional[List[List[str]]]:
        for words in value or []:
            for word in words:
                if not word or any(char.isspace() for char in word):
                    raise ValueError(f"expected words without whitespace, got {word!r}; split it, or send "
                                     "raw text as 'texts'")
        return value

    @model_validator(mode="after")
    def _one_input(self) -> "PredictRequest":
        given = [name for name in ("text", "texts", "tokens", "inputs") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"expected exactly one of 'text', 'texts', 'tokens', 'inputs', got {given or 'none'}")
        return self

    def sentences(self) -> List[Sentence]:
        """One sentence per text (raw text tokenized as ``mcrf predict`` does, with offsets)."""
        if self.tokens is not None:
            return [Sentence(tuple(words)) for words in self.tokens]
        texts = next(value for value in (self.text, self.texts, self.inputs) if value is not None)
        return [tokenize_line(text) for text in ([texts] if isinstance(texts, str) else texts)]


def _validation_error(error: ValidationError) -> JSONResponse:
    """422 in FastAPI's shape, one entry per bad field (``loc`` names it)."""
    detail = [{"loc": ["body", *error_["loc"]], "msg": error_["msg"], "type": error_["type"]}
              for error_ in error.errors(include_url=False)]
    return JSONResponse({"detail": detail}, status_code=422)


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"request body of {declared} bytes is over the limit of {limit} (--max-body)")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, f"request body is over the limit of {limit} bytes (--max-body)")
            chunks.append(chunk)
    except ClientDisconnect:  # nobody is left to answer; the 400 goes nowhere
        logger.debug("client disconnected after %d bytes of its request body", size)
        raise HTTPException(400, "the client closed the connection before sending the whole body") from None
    return b"".join(chunks)


def _parse(body: bytes, config: ServeConfig) -> List[Sentence]:
    """The sentences of a request body (HTTPException 400/413, or ValidationError for a 422)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise HTTPException(400, f"request body is not valid UTF-8 (byte {error.start}: "
                                 f"{body[error.start:error.start + 1]!r}); send UTF-8 JSON") from None
    sentences = PredictRequest.model_validate_json(text).sentences()
    if len(sentences) > config.max_queue:
        raise HTTPException(413, f"{len(sentences)} texts in one request; the limit is {config.max_queue} "
                                 "(--max-queue): split the request")
    for index, sentence in enumerate(sentences):
        if len(sentence.tokens) > config.max_words:
            raise HTTPException(413, f"text {index} has {len(sentence.tokens)} words; the limit is "
                                     f"{config.max_words} words per text (--max-words)")
    return sentences


def _one_line(error: BaseException) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())


def create_app(tagger, config: ServeConfig = None) -> FastAPI:
    """The FastAPI app serving ``tagger``; the micro-batcher's worker runs while the app runs (lifespan).

    Args:
        tagger: a ``mcrf.models.Tagger`` (owned by the worker thread from startup on).
        config: limits and batching settings (``ServeConfig()`` by default).
    """
    config = config or ServeConfig()
    batcher = MicroBatcher(tagger, config.max_batch, config.max_wait_ms, config.max_queue)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        try:
            yield
        finally:  # requests already received were answered (uvicorn waits for them): end the worker
            await asyncio.get_running_loop().run_in_executor(None, batcher.stop)

    app = FastAPI(title="mcrf", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.batcher = batcher
    info = {"labels": list(tagger.config.labels), "scheme": tagger.config.scheme,
            "encoder": tagger.config.encoder, "decoder": tagger.config.decoder,
            "mcrf_version": __version__, "model_mcrf_version": tagger.config.mcrf_version,
            "max_batch": config.max_batch, "max_wait_ms": config.max_wait_ms, "max_queue": config.max_queue,
            "max_body": config.max_body, "max_words": config.max_words}
    page = demo_page()

    @app.get("/health")
    async def health() -> Dict[str, str]:
        """Liveness: ``{"status": "ok"}``."""
        return {"status": "ok"}

    @app.get("/info")
    async def model_info() -> Dict[str, Any]:
        """The model (labels, scheme, encoder, decoder, versions) and the server's limits."""
        return info

    @app.get("/stats")
    async def stats() -> Dict[str, Any]:
        """The micro-batch sizes served so far."""
        return batcher.stats()

    @app.get("/", response_class=HTMLResponse)
    async def demo() -> HTMLResponse:
        """The demo page: a text box, and the tagged text with its entities."""
        return HTMLResponse(page)

    @app.get("/docs", response_class=HTMLResponse)
    async def docs() -> HTMLResponse:
        """This page: the routes and request bodies (the full schema is /openapi.json)."""
        return HTMLResponse(docs_page(app.openapi()))

    @app.post("/predict")
    async def predict(request: Request):
        """Tag texts: one record per text, as `mcrf predict --format jsonl` writes it."""
        body = await _read_body(request, config.max_body)
        try:
            sentences = _parse(body, config)
        except ValidationError as error:
            return _validation_error(error)
        if not sentences:
            return {"results": []}
        try:
            future = batcher.submit(sentences)
        except QueueFull as error:
            return JSONResponse({"detail": f"busy: {error}; retry later"}, status_code=503,
                                headers={"Retry-After": str(config.retry_after)})
        except BatcherClosed as error:
            return JSONResponse({"detail": str(error)}, status_code=503, headers={"Retry-After": "5"})
        try:
            records = await asyncio.wrap_future(future)
        except Exception as error:  # noqa: BLE001 - logged with its traceback by the batcher
            return JSONResponse({"detail": f"internal error while tagging: {_one_line(error)}"}, status_code=500)
        return JSONResponse({"results": records})  # plain JSON data: FastAPI's jsonable_encoder pass is not needed

    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one), IPv4 or IPv6 by the address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(tagger, config: ServeConfig, sock: socket.socket = None) -> None:
    """Run the service until SIGINT/SIGTERM; SIGTERM answers the requests already received, then returns.

    Args:
        tagger: the model.
        config: settings (host/port are used when ``sock`` is None).
        sock: an already bound listening socket (``bind``), e.g. to log the port chosen for port 0.
    """
    import uvicorn

    class _Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            if sig == signal.SIGTERM:  # graceful stop, then a normal return (uvicorn would re-raise it)
                self.should_exit = True
                return
            super().handle_exit(sig, frame)

    sock = sock or bind(config.host, config.port)
    uv_config = uvicorn.Config(create_app(tagger, config), log_config=None, access_log=False,
                               timeout_graceful_shutdown=60, lifespan="on")
    _Server(uv_config).run(sockets=[sock])
