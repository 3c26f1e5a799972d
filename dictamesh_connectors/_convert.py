"""Value converters shared by configs and the retry policy (no other imports).

``config.py`` imports ``retry.py`` (every config holds a ``RetryPolicy``),
so the pieces both need live here, below both of them.
"""

from __future__ import annotations

import math

from dictamesh_connectors.errors import InvalidConfigError

__all__ = ["MAX_TIMEOUT", "check_timeout", "describe_value", "parse_number"]


def describe_value(value: object) -> str:
    """Describe a (non-secret) value for an error message: its type and a short repr.

    Never raises, whatever the value: only plain ``str``, ``int`` and
    ``float`` values are shown (at most 60 characters; an int too long to
    print is shown by its size), anything else by its type name alone, so a
    hostile ``__repr__`` is never called.

    Example::

        >>> describe_value("soon")
        "str 'soon'"
        >>> describe_value(object())
        'object'
    """
    kind = type(value)
    if kind is int and isinstance(value, int):
        if value.bit_length() > 128:
            return f"int with {value.bit_length()} bits"
        return f"int {value!r}"
    if kind is float or kind is str:
        return f"{kind.__name__} {value!r:.60}"
    return kind.__name__


def parse_number(
    value: object,
    *,
    integer: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    optional: bool = False,
) -> int | float | None:
    """Convert a number or numeric string, checking it is finite and in range.

    Args:
        value: An ``int``, ``float`` or numeric ``str`` (``bool`` is refused).
        integer: Return an ``int``; a float with a fraction is refused.
        minimum, maximum: Inclusive bounds (``None``: unbounded on that side).
        optional: ``None`` (or a blank string) gives ``None``.

    Raises:
        InvalidConfigError: Anything else; the message shows the value only
            through ``describe_value``.
    """
    if value is None or (optional and isinstance(value, str) and not value.strip()):
        if optional:
            return None
        raise InvalidConfigError("a value is required")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidConfigError(f"expected a number, got {describe_value(value)}")
    try:
        number: int | float
        if isinstance(value, int):
            number = value if integer else float(value)
        elif isinstance(value, str) and integer and value.strip().lstrip("+-").isdigit():
            number = int(value)
        else:
            number = float(value)
            if integer:
                if not math.isfinite(number) or number != int(number):
                    raise ValueError("not an integer")
                number = int(number)
    except (TypeError, ValueError, OverflowError):
        raise InvalidConfigError(f"not a valid number: {describe_value(value)}") from None
    if isinstance(number, float) and not math.isfinite(number):
        raise InvalidConfigError(f"expected a finite number, got {describe_value(value)}")
    if minimum is not None and number < minimum:
        raise InvalidConfigError(f"{describe_value(number)} is below the minimum {minimum!r}")
    if maximum is not None and number > maximum:
        raise InvalidConfigError(f"{describe_value(number)} is above the maximum {maximum!r}")
    return number


MAX_TIMEOUT = 7 * 24 * 3600.0
"""The longest finite timeout any call accepts (7 days); ``inf`` means none."""


def check_timeout(value: object, *, name: str = "timeout", positive: bool = False) -> float | None:
    """Validate a per-call timeout in seconds, before any I/O.

    ``None`` and ``inf`` mean "no limit" (``None``); otherwise a finite
    number from 0 (above 0 when ``positive``: a network wait of zero
    seconds cannot succeed) to ``MAX_TIMEOUT``.

    Raises:
        TypeError: Not a number (a programming error, like any wrong type).
        InvalidConfigError: NaN, negative, or above ``MAX_TIMEOUT``.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or None, not {type(value).__name__}")
    if isinstance(value, float) and math.isinf(value) and value > 0:
        return None
    if not (0 <= value <= MAX_TIMEOUT) or (positive and value == 0):  # NaN fails too
        low = "above 0" if positive else "from 0"
        raise InvalidConfigError(
            f"{name}: {describe_value(value)} is not a number of seconds {low} to "
            f"{MAX_TIMEOUT:.0f} (use None for no limit)"
        )
    return float(value)
