"""Value converters shared by configs and the retry policy (no other imports).

``config.py`` imports ``retry.py`` (every config holds a ``RetryPolicy``),
so the pieces both need live here, below both of them.
"""

from __future__ import annotations

import math

from dictamesh_connectors.errors import ArgumentTypeError, InvalidConfigError

__all__ = ["MAX_TIMEOUT", "check_timeout", "describe_value", "parse_number", "to_seconds"]


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


_NO_LIMIT_WORDS = frozenset({"inf", "+inf", "infinity", "+infinity", "none", "never"})


def to_seconds(
    value: object,
    *,
    name: str = "timeout",
    positive: bool = False,
    maximum: float = MAX_TIMEOUT,
    no_limit: str | None = "None",
    text: bool = False,
) -> float:
    """Validate a duration in seconds: the one converter behind every timeout.

    Every connector's duration (a per-call ``timeout``, MongoDB's
    ``max_time`` and ``expire_after``, the File connector's ``lock()``
    timeout and its ``lock_timeout``/``orphan_age`` fields) goes through
    here, so NaN, ``bool``, negative numbers and an ``int`` too large for a
    float are refused the same way everywhere; the callers differ only in
    the parameters (and in the exception class they re-raise as).

    Args:
        value: An ``int`` or ``float`` (``bool`` is refused); with ``text``,
            also a numeric ``str``.
        name: What the value is, for the message (``""``: the caller names
            it, as ``field_converter`` does for a config field).
        positive: Refuse 0 (a network wait of zero seconds cannot succeed).
        maximum: The largest finite value (inclusive); ``math.inf``: no bound,
            and an in-range ``int`` too large for a float becomes ``inf``.
        no_limit: How the caller spells "no limit" in the message (``"None"``,
            ``"inf"``); ``+inf`` is accepted and returned as ``math.inf``.
            ``None``: a finite duration is required and ``inf`` is refused.
        text: Accept a numeric string (a config field read from a URL or
            the environment); ``"inf"``, ``"infinity"``, ``"none"`` and
            ``"never"`` mean no limit.

    Returns:
        The seconds as a ``float``; ``math.inf`` for no limit.

    Raises:
        ArgumentTypeError: Not a number (a programming error; also a TypeError).
        InvalidConfigError: NaN, negative, zero when ``positive``, above
            ``maximum``, or ``inf`` when ``no_limit`` is ``None``; the
            message shows the value only through ``describe_value``.
    """
    label = f"{name}: " if name else ""
    if text and isinstance(value, str):
        word = value.strip().lower()
        if word in _NO_LIMIT_WORDS and no_limit is not None:
            return math.inf
        try:
            value = float(word)
        except ValueError:
            raise InvalidConfigError(
                f"{label}{describe_value(value)} is not a number of seconds"
            ) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "a number of seconds or None" if no_limit == "None" else "a number of seconds"
        raise ArgumentTypeError(f"{name or 'the value'} must be {kind}, not {type(value).__name__}")
    unlimited = no_limit is not None and value == math.inf
    # Compared before converting: an int like 10**400 has no float, and
    # Python compares it with a float exactly.  NaN fails every comparison.
    if not unlimited and (not (0 <= value <= maximum) or (positive and value == 0)):
        low = "above 0" if positive else "from 0"
        high = f" to {maximum:.0f}" if math.isfinite(maximum) else ""
        hint = f" (use {no_limit} for no limit)" if no_limit is not None else ""
        raise InvalidConfigError(
            f"{label}{describe_value(value)} is not a number of seconds {low}{high}{hint}"
        )
    try:
        number = float(value)
    except OverflowError:  # an int past any float, in range only when maximum is inf
        number = math.inf
    if number == math.inf and no_limit is None:
        raise InvalidConfigError(
            f"{label}{describe_value(value)} is not a finite number of seconds"
        )
    return number


def check_timeout(value: object, *, name: str = "timeout", positive: bool = False) -> float | None:
    """Validate a per-call timeout in seconds, before any I/O.

    ``None`` and ``inf`` mean "no limit" (``None``); otherwise a finite
    number from 0 (above 0 when ``positive``: a network wait of zero
    seconds cannot succeed) to ``MAX_TIMEOUT``. ``to_seconds`` with the
    per-call bounds.

    Raises:
        ArgumentTypeError: Not a number (a programming error; also a TypeError).
        InvalidConfigError: NaN, negative, or above ``MAX_TIMEOUT``.
    """
    if value is None:
        return None
    seconds = to_seconds(value, name=name, positive=positive)
    return None if seconds == math.inf else seconds
