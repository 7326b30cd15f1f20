"""Rules of voice and face models (pure checks, no I/O): status, quality, language,
sample rate, resolution, and the checks of the columns every kind has."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from digitwin_db.errors import ValidationError
from digitwin_db.models.ai_models import MODEL_STATUSES
from digitwin_db.validation import (
    check_choice,
    check_number,
    check_optional_int,
    check_text,
    json_param,
    shown,
)

_RESOLUTION_LENGTH = 11  # "99999x99999"


def check_status(value: object) -> str:
    return check_choice(value, "status", MODEL_STATUSES)


def check_quality(value: object) -> float | None:
    if value is None:
        return None
    return check_number(value, "quality_score", minimum=0.0, maximum=1.0)


def check_language(value: object) -> str | None:
    if value is None:
        return None
    return check_text(value, "language", min_length=2, max_length=35)


def check_sample_rate(value: object) -> int | None:
    return check_optional_int(value, "sample_rate", minimum=8000, maximum=192000)


def check_resolution(value: object) -> str | None:
    if value is None:
        return None
    text = check_text(value, "resolution", max_length=_RESOLUTION_LENGTH)
    width, sep, height = text.partition("x")
    if not (sep and 2 <= len(width) <= 5 and 2 <= len(height) <= 5) or not (
        width.isascii() and width.isdigit() and height.isascii() and height.isdigit()
    ):
        raise ValidationError(f"resolution must look like 1920x1080, got {shown(text)}")
    return text


#: Columns every kind has, with their checks (update()'s whitelist starts here).
COMMON_CHECKS: dict[str, Callable[[Any], Any]] = {
    "name": lambda v: check_text(v, "name", max_length=200),
    "provider": lambda v: check_text(v, "provider", max_length=100),
    "model_ref": lambda v: check_text(v, "model_ref", max_length=1000, strip=False),
    "status": check_status,
    "quality_score": check_quality,
    "metadata": lambda v: json_param(v, "metadata"),
}
