"""HTTP answers for errors: 422 responses that name the offending fields, and the run store's
domain errors (backend/store/errors.py) mapped to their status codes.

Every 422 body is FastAPI's shape plus `fields`, the dotted paths a form can highlight:
`{"detail": [{"loc": ["body", "overrides", "pcm.budget"], "msg": ..., "type": ...}],
"fields": ["pcm.budget"]}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError

from backend.store.errors import BrokerUnavailable, ConfigProblems

_LOCATIONS = ("body", "query", "path", "header", "cookie")


@dataclass(frozen=True)
class FieldProblem:
    loc: tuple[str | int, ...]
    msg: str
    type: str = "value_error"
    field: str | None = None  # dotted path; default: `loc` without its location part

    def dotted(self) -> str:
        if self.field is not None:
            return self.field
        parts = self.loc[1:] if self.loc and self.loc[0] in _LOCATIONS else self.loc
        return ".".join(str(p) for p in parts)


class FieldErrors(Exception):
    """Raise from an endpoint to answer 422 naming the fields at fault."""

    def __init__(self, problems: Sequence[FieldProblem]):
        super().__init__("; ".join(f"{p.dotted()}: {p.msg}" for p in problems))
        self.problems = list(problems)


def _response(detail: list[dict], fields: list[str]) -> JSONResponse:
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={"detail": jsonable_encoder(detail), "fields": list(dict.fromkeys(fields))},
    )


def _problems_response(problems: Sequence[FieldProblem]) -> JSONResponse:
    detail = [{"loc": list(p.loc), "msg": p.msg, "type": p.type} for p in problems]
    return _response(detail, [p.dotted() for p in problems])


async def _field_errors(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FieldErrors)
    return _problems_response(exc.problems)


async def _config_problems(_request: Request, exc: Exception) -> JSONResponse:
    """A launch refused by the store: each problem is located in the request body."""
    assert isinstance(exc, ConfigProblems)
    return _problems_response(
        [FieldProblem(("body", *p.where), p.message, "value_error.config", p.dotted()) for p in exc.problems]
    )


async def _broker_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BrokerUnavailable)
    return JSONResponse(
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        content={"detail": f"{exc}. Start it, then POST /api/runs/{exc.run_id}/requeue."},
    )


async def _request_validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    fields = [FieldProblem(tuple(e.get("loc", ())), e.get("msg", "")).dotted() for e in errors]
    return _response(errors, fields)


async def _data_error(_request: Request, exc: Exception) -> JSONResponse:
    """The database refused a value the schema let through (e.g. a NUL character, which
    PostgreSQL text cannot hold): the caller's input is at fault, not the server."""
    reason = str(getattr(exc, "orig", exc)).splitlines()[0]
    detail = [
        {"loc": [], "msg": f"a value was refused by the database: {reason}", "type": "value_error.database"}
    ]
    return _response(detail, [])


def install(app: FastAPI) -> None:
    app.add_exception_handler(FieldErrors, _field_errors)
    app.add_exception_handler(ConfigProblems, _config_problems)
    app.add_exception_handler(BrokerUnavailable, _broker_unavailable)
    app.add_exception_handler(DataError, _data_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
