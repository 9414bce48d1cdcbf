"""Go's renderings and parsers that kube-state-metrics' output depends on, in Python.

kube-state-metrics formats label values with Go's ``fmt.Sprintf("%v", v)``
and converts strings to numbers with ``strconv.ParseFloat``,
``time.Parse(time.RFC3339, ...)`` and apimachinery's ``resource.ParseQuantity``
(``AsApproximateFloat64``). To expose the same series from the same object,
these are ported here, each as its Go original behaves on the values a
decoded JSON object can hold (str, bool, int, float, None, list, dict).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from typing import Any

__all__ = ["go_format_float", "go_parse_float", "go_sprint", "parse_quantity", "parse_rfc3339"]


def go_format_float(value: float) -> str:
    """``strconv.FormatFloat(value, 'g', -1, 64)``, which is also what ``%v`` prints for a float64."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign, digits, exponent = Decimal(repr(value)).as_tuple()
    text = "".join(str(d) for d in digits).rstrip("0") or "0"
    # Shortest digits d1 d2 ... dn with the decimal point after the first: value = 0.d1...dn × 10^point.
    point = len(digits) + int(exponent)
    exp = point - 1
    prefix = "-" if sign else ""
    # Go: %e when exp < -4 || exp >= 6 for the shortest form (ftoa.go formatDigits).
    eprec = 6
    if exp < -4 or exp >= eprec:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return "%s%se%s%02d" % (prefix, mantissa, "-" if exp < 0 else "+", abs(exp))
    if point <= 0:
        return "%s0.%s%s" % (prefix, "0" * -point, text)
    if point >= len(text):
        return prefix + text + "0" * (point - len(text))
    return "%s%s.%s" % (prefix, text[:point], text[point:])


def go_sprint(value: Any) -> str:
    """``fmt.Sprintf("%v", value)`` for a value decoded from JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_format_float(value)
    if isinstance(value, dict):
        # Go prints maps with their keys sorted.
        return "map[%s]" % " ".join("%s:%s" % (go_sprint(k), go_sprint(value[k])) for k in sorted(value, key=str))
    if isinstance(value, (list, tuple)):
        return "[%s]" % " ".join(go_sprint(item) for item in value)
    return str(value)


_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")
_SPECIAL = re.compile(r"[+-]?(?:inf|infinity)\Z|nan\Z", re.IGNORECASE)
_HEX = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?\d+\Z")


def go_parse_float(text: str) -> float:
    """``strconv.ParseFloat(text, 64)``: decimal, hex (``0x1p-2``), ``inf``/``infinity``/``nan``.

    Unlike Python's ``float``, no surrounding space and no underscores (Go
    allows them only with a base prefix, which decimal floats do not have).
    Out-of-range values are ±Inf with an error in Go; they are refused here.

    Raises:
        ValueError: Go refuses it.
    """
    if _DECIMAL.match(text) or _SPECIAL.match(text):
        result = float(text)
    elif _HEX.match(text):
        negative = text.startswith("-")
        result = float.fromhex(text.lstrip("+-"))
        result = -result if negative else result
    else:
        raise ValueError("strconv.ParseFloat: parsing %r: invalid syntax" % text)
    if math.isinf(result) and not _SPECIAL.match(text):
        raise ValueError("strconv.ParseFloat: parsing %r: value out of range" % text)
    return result


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?(?:(Z)|([+-])(\d{2}):(\d{2}))\Z"
)


def parse_rfc3339(text: str) -> int | None:
    """Seconds since the epoch (``time.Time.Unix()``) of an RFC 3339 time as Go's ``time.RFC3339`` parses it.

    Go accepts a fractional second after the seconds field although the layout
    has none; ``Unix()`` drops it (rounding toward the past).
    """
    match = _RFC3339.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    if hour > 23 or minute > 59 or second > 59:
        return None
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None
    if match.group(8) is None:
        offset = timedelta(hours=int(match.group(10)), minutes=int(match.group(11)))
        if int(match.group(10)) > 23 or int(match.group(11)) > 59:
            return None
        moment -= offset if match.group(9) == "+" else -offset
    return int((moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(seconds=1))


# apimachinery's resource.ParseQuantity, as far as AsApproximateFloat64 can tell the results apart.
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_SI = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_MAX_INT64 = 2**63 - 1
_POW10_TAB = [float("1e%d" % i) for i in range(32)]
_POW10_POS32 = [float("1e%d" % (32 * i)) for i in range(10)]
_POW10_NEG32 = [float("1e-%d" % (32 * i)) for i in range(11)]


def _go_pow10(n: int) -> float:
    """``math.Pow10(n)``, computed as Go does (two table entries multiplied or divided)."""
    if 0 <= n <= 308:
        return _POW10_POS32[n // 32] * _POW10_TAB[n % 32]
    if -323 <= n <= 0:
        return _POW10_NEG32[-n // 32] / _POW10_TAB[-n % 32]
    return math.inf if n > 0 else 0.0


def _split_quantity(text: str) -> tuple[bool, str, str, str, str]:
    """``parseQuantityString``: sign, value, numerator, denominator, suffix."""
    positive, pos, end = True, 0, len(text)
    if text[0] in "+-":
        positive = text[0] != "-"
        pos = 1
    while pos < end and text[pos] == "0":
        pos += 1
    if pos >= end:
        return positive, "0", "0", "", ""
    start = pos
    while pos < end and text[pos].isdigit() and text[pos].isascii():
        pos += 1
    num = text[start:pos] or "0"
    if pos >= end:
        return positive, text, num, "", ""
    denom = ""
    if text[pos] == ".":
        pos += 1
        start = pos
        while pos < end and text[pos].isdigit() and text[pos].isascii():
            pos += 1
        denom = text[start:pos]
        if pos >= end:
            return positive, text, num, denom, ""
    value = text[:pos]
    suffix_start = pos
    while pos < end and text[pos] in "eEinumkKMGTP":
        pos += 1
    if pos < end and text[pos] in "+-":
        pos += 1
    while pos < end and text[pos].isdigit() and text[pos].isascii():
        pos += 1
    if pos < end:
        raise ValueError("quantities must match the regular expression")
    return positive, value, num, denom, text[suffix_start:]


def parse_quantity(text: str) -> float:
    """``resource.MustParse(text).AsApproximateFloat64()``.

    Raises:
        ValueError: ``ParseQuantity`` refuses it.
    """
    if not text:
        raise ValueError("quantities must match the regular expression")
    if text == "0":
        return 0.0
    positive, value, num, denom, suffix = _split_quantity(text)
    if suffix in _DECIMAL_SI:
        base, exponent, fmt = 10, _DECIMAL_SI[suffix], "si"
    elif suffix in _BINARY:
        base, exponent, fmt = 2, _BINARY[suffix], "bin"
    elif len(suffix) > 1 and suffix[0] in "eE" and re.fullmatch(r"[+-]?\d+", suffix[1:]):
        base, exponent, fmt = 10, int(suffix[1:]), "exp"
        if not -(2**63) <= exponent < 2**63:
            raise ValueError("unable to parse quantity's suffix")
        exponent = (exponent + 2**31) % 2**32 - 2**31  # Go's int32(parsed)
    else:
        raise ValueError("unable to parse quantity's suffix")
    precision, scale, mantissa = 0, 0, 1
    if fmt in ("si", "exp"):
        scale = exponent
        precision = 18 - (len(num) + len(denom))
    elif exponent >= 0 and not denom:
        mantissa = 1 << exponent
        precision = 15 - len(num) - int(exponent * 3 / 10) - 1
    else:
        precision = -1
    if precision >= 0:
        scale -= len(denom)
        if scale >= -9:
            shifted = int(num + denom)
            if shifted > _MAX_INT64:
                raise ValueError("quantities must match the regular expression")
            result = shifted * mantissa
            if -(2**63) <= result <= _MAX_INT64:
                result = result if positive else -result
                return float(result) if scale == 0 else float(result) * _go_pow10(scale)
    try:
        amount = Decimal(value)
    except InvalidOperation as exc:
        raise ValueError("quantities must match the regular expression") from exc
    if base == 10:
        amount = amount.scaleb(exponent)
    else:
        amount = amount * (1 << exponent)
    negative = amount < 0
    amount = abs(amount)
    if amount != 0:
        amount = amount.quantize(Decimal("1e-9"), rounding=ROUND_CEILING)
    if fmt == "bin" and amount > _MAX_INT64:
        amount = Decimal(_MAX_INT64)
    if negative:
        amount = -amount
    sign, digits, exp = amount.as_tuple()
    unscaled = int("".join(str(d) for d in digits) or "0")
    base_value = float(-unscaled if sign else unscaled)
    return base_value if exp == 0 else base_value * _go_pow10(int(exp))
