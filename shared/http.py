"""HTTP pieces every service's API shares: errors, bearer auth, health, readiness, /metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, FastAPI, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import AuthError, Principal, verify_token
from shared.db import TRANSIENT_DB_ERRORS
from shared.metrics import ServiceMetrics

log = logging.getLogger("opensmm.http")

ReadyCheck = Callable[[], Awaitable[bool]]

_bearer = HTTPBearer(auto_error=False)


class ApiError(HTTPException):
    """An error the client can act on; the body is {"error": code, "message": …}."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(status_code=status_code, detail=message, headers=headers)
        self.code = code
        self.extra = extra


def validation_details(exc: ValidationError | RequestValidationError) -> list[dict[str, Any]]:
    """Each problem with a dotted path naming the field, e.g. `mentions.3.author.handle`."""
    return [
        {
            "field": ".".join(str(p) for p in err["loc"] if p not in ("body",)),
            "message": err["msg"],
            "type": err["type"],
        }
        for err in exc.errors()
    ]


def _json_syntax(detail: dict[str, Any], exc: RequestValidationError) -> dict[str, Any]:
    """A body that is not JSON: where it breaks (0-based character, 1-based line and column)
    instead of a bare offset in `field`."""
    if detail["type"] != "json_invalid" or not detail["field"].isdigit():
        return detail
    position = int(detail["field"])
    doc = exc.body if isinstance(exc.body, str) else ""
    line = doc.count("\n", 0, position) + 1
    column = position - (doc.rfind("\n", 0, position) + 1) + 1
    reason = next((e.get("ctx", {}).get("error") for e in exc.errors()), None) or "invalid JSON"
    return {
        "field": "body",
        "message": f"{reason} at line {line} column {column} (char {position})",
        "type": "json_invalid",
        "position": position,
        "line": line,
        "column": column,
    }


def unprocessable(exc: ValidationError) -> ApiError:
    details = validation_details(exc)
    fields = ", ".join(d["field"] for d in details[:5])
    return ApiError(422, "invalid_body", f"invalid fields: {fields}", details=details)


def validated_config(model: type[BaseModel], config: dict[str, Any], what: str) -> dict[str, Any]:
    """`config` checked against a connector's or adapter's model, as JSON; a 422 naming each
    field (`config.api_base`) otherwise."""
    try:
        return model.model_validate(config).model_dump(mode="json")
    except ValidationError as exc:
        details = [{**d, "field": f"config.{d['field']}"} for d in validation_details(exc)]
        raise ApiError(
            422,
            "invalid_config",
            f"invalid {what} config: " + ", ".join(d["field"] for d in details[:5]),
            details=details,
        ) from exc


class ErrorDetail(BaseModel):
    """One problem. `field` is null when the problem is the whole input (an empty CSV file);
    some errors add where it is (`row`, `line`, `column`, `position`)."""

    model_config = ConfigDict(extra="allow")

    field: str | None
    message: str
    type: str | None = None


class ErrorBody(BaseModel):
    """Every error answer: a stable code, a sentence for people, and per-field details on 422.
    Some errors add context (e.g. `claimed_by` on a claim conflict)."""

    model_config = ConfigDict(extra="allow")

    error: str
    message: str
    details: list[ErrorDetail] | None = None


# Documented on every /api/v1 route, so the OpenAPI shows the error shape clients really get.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The body could not be read (e.g. not UTF-8)."},
    401: {"model": ErrorBody, "description": "No valid bearer token."},
    403: {"model": ErrorBody, "description": "The token's role may not do this."},
    404: {"model": ErrorBody, "description": "Not found in the caller's tenant."},
    409: {"model": ErrorBody, "description": "Conflicts with the current state."},
    413: {"model": ErrorBody, "description": "The body is larger than the service accepts."},
    422: {"model": ErrorBody, "description": "Invalid input; `details` names each field."},
}

# Codes for the errors the framework raises itself (unreadable body, size limit, routing).
_HTTP_ERROR_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        body = {"error": exc.code, "message": exc.detail, **exc.extra}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # The framework's own errors (FastAPI's 400 for a body it cannot decode, the body size
        # limit's 413) get the same shape as ours instead of {"detail": ...}.
        code = _HTTP_ERROR_CODES.get(exc.status_code, "http_error")
        body = {"error": code, "message": str(exc.detail)}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    # Valid JSON can carry text Postgres cannot store (NUL, lone surrogates such as "\ud800");
    # that is the client's input, whatever route it reached, and the statement changed nothing.
    @app.exception_handler(asyncpg.CharacterNotInRepertoireError)
    @app.exception_handler(asyncpg.UntranslatableCharacterError)
    @app.exception_handler(UnicodeEncodeError)
    async def _unstorable_text(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            {
                "error": "invalid_text",
                "message": "text must be valid Unicode without NUL characters or lone surrogates",
            },
            status_code=422,
        )

    # The database is restarting or unreachable (or the transaction lost a race it can retry):
    # nothing was changed, and the same call will work shortly. Clients and networks retry a 503
    # after Retry-After; a 500 would read as a bug.
    async def _database_unavailable(_: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable: %r", exc)
        return JSONResponse(
            {"error": "unavailable", "message": "the database is unavailable; retry shortly"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    for transient in TRANSIENT_DB_ERRORS:
        if issubclass(transient, Exception):
            app.add_exception_handler(transient, _database_unavailable)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [_json_syntax(d, exc) for d in validation_details(exc)]
        fields = ", ".join(d["field"] for d in details[:5])
        return JSONResponse(
            {
                "error": "invalid_request",
                "message": f"invalid fields: {fields}",
                "details": details,
            },
            status_code=422,
        )


class BodyLimit:
    """Refuses a request body over `max_bytes` with a 413 in the usual error shape, whether its
    size is declared (Content-Length: refused before reading) or only known while it streams."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> ApiError:
        return ApiError(413, "body_too_large", f"body exceeds {self.max_bytes} bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            exc = self._too_large()
            response = JSONResponse({"error": exc.code, "message": exc.detail}, status_code=413)
            await response(scope, receive, send)
            return
        size = 0

        async def limited() -> Message:
            nonlocal size
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > self.max_bytes:
                    # Raised inside the app, so the ApiError handler answers it.
                    raise self._too_large()
            return message

        await self.app(scope, limited, send)


def install_body_limit(app: FastAPI, max_bytes: int) -> None:
    """One limit for every body the service accepts (JSON APIs, CSV imports, webhooks)."""
    app.add_middleware(BodyLimit, max_bytes=max_bytes)


def bearer_auth(secret: str, issuer: str) -> Callable[..., Awaitable[Principal]]:
    async def authenticate(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if credentials is None:
            raise ApiError(
                401,
                "unauthenticated",
                "a bearer token is required",
                headers={"WWW-Authenticate": "Bearer"},
            )
        try:
            return verify_token(secret, credentials.credentials, issuer=issuer)
        except AuthError as exc:
            raise ApiError(
                401, "unauthenticated", str(exc), headers={"WWW-Authenticate": "Bearer"}
            ) from exc

    return authenticate


def require_role(principal: Principal, roles: Sequence[str]) -> None:
    if principal.role not in roles:
        raise ApiError(
            403, "forbidden", f"role {principal.role!r} may not do this; needs {', '.join(roles)}"
        )


def install_operational_routes(
    app: FastAPI, metrics: ServiceMetrics, ready_checks: dict[str, ReadyCheck]
) -> None:
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        results = {name: await check() for name, check in ready_checks.items()}
        ok = all(results.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": results},
            status_code=status.HTTP_200_OK if ok else status.HTTP_503_SERVICE_UNAVAILABLE,
        )

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.middleware("http")
    async def record(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        # The route template, not the raw path: ids in paths would make labels unbounded.
        label = getattr(route, "path", "unmatched")
        metrics.http_requests.labels(request.method, label, str(response.status_code)).inc()
        metrics.http_seconds.labels(request.method, label).observe(time.perf_counter() - started)
        return response
