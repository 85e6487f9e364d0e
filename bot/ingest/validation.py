"""Turns pydantic's validation errors into one message that names the offending field."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from bot.ingest.errors import InvalidPayload

ModelT = TypeVar("ModelT", bound=BaseModel)


def parse_body(model: type[ModelT], body: bytes) -> ModelT:
    """Validate a JSON body against ``model``; raise :class:`InvalidPayload` naming the first bad field."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise invalid_from(exc) from None


def invalid_from(exc: ValidationError) -> InvalidPayload:
    error = exc.errors(include_url=False, include_input=False)[0]
    if error["type"] == "json_invalid":
        return InvalidPayload(f"malformed JSON: {error['msg']}", field=None)
    if error["type"] == "model_type" and not error["loc"]:
        return InvalidPayload("the body must be a JSON object", field=None)
    field = ".".join(str(part) for part in error["loc"]) or None
    return InvalidPayload(f"{field}: {error['msg']}" if field else error["msg"], field=field)
