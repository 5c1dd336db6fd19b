"""The closed set of column types, and how each DynamoDB value becomes a SQL parameter.

One table (`COLUMN_TYPES`) says, for every SQL type a mapping may name, which DynamoDB types it
accepts, its SQLAlchemy type (for migrations), the array type that carries a batch of its values to
PostgreSQL, and the conversion from a DynamoDB stream value. Values arrive in the stream's JSON form
(numbers as text, binary as base64), so conversions work on that form directly: numbers stay exact
because they are never turned into floats.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Context, Decimal, InvalidOperation
from typing import Any, Callable

import simplejson
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.types import TypeEngine

DYNAMODB_TYPES = ("S", "N", "B", "BOOL", "NULL", "SS", "NS", "BS", "L", "M")
KEY_TYPES = ("S", "N", "B")
_TYPE_SET = frozenset(DYNAMODB_TYPES)

# DynamoDB type -> the column type used when a mapping names none.
DEFAULT_SQL_TYPE = {
    "S": "text",
    "N": "numeric",
    "B": "bytea",
    "BOOL": "boolean",
    "NULL": "jsonb",
    "SS": "text[]",
    "NS": "numeric[]",
    "BS": "bytea[]",
    "L": "jsonb",
    "M": "jsonb",
}

_INT_RANGES = {
    "smallint": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
}


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class ConversionError(ValueError):
    """A value that cannot be stored in its column; the message is the reject reason."""


Converter = Callable[[str, Any], Any]


@dataclass(frozen=True)
class ColumnType:
    """One SQL column type: what it accepts, how it is declared, carried and converted."""

    sql: str
    accepts: frozenset[str]
    sa_type: TypeEngine
    transport: str  # the SQL type it travels as in the batch's JSON document
    convert: Converter
    # How the travelling value becomes the column value; `{}` stands for the value.
    expression: str = "{}"
    exact: bool = True  # False: distinct DynamoDB values may land as one column value


# --- scalar conversions -------------------------------------------------------------------------


def storable(text: str) -> str:
    """`text` if PostgreSQL can hold it as UTF-8; a lone surrogate (JSON allows `\\ud800`) cannot."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ConversionError("string holds a lone surrogate, which is not valid Unicode") from None
    return text


def _text(limit: int | None) -> Converter:
    def convert(tag: str, raw: Any) -> str:
        if type(raw) is str and raw.isascii() and "\x00" not in raw and (limit is None or len(raw) <= limit):
            return raw  # the usual value, checked in one go
        if not isinstance(raw, str):
            raise ConversionError(f"expected a string, got {type(raw).__name__}")
        if "\x00" in raw:
            raise ConversionError("string contains a NUL character, which PostgreSQL text cannot hold")
        storable(raw)
        if limit is not None and len(raw) > limit:
            raise ConversionError(f"value of {len(raw)} characters exceeds varchar({limit})")
        return raw

    return convert


def parse_number(raw: Any) -> Decimal:
    """Parse a DynamoDB number exactly, refusing what is not a finite decimal."""
    if not isinstance(raw, str):
        raise ConversionError(f"expected a number as text, got {type(raw).__name__}")
    try:
        number = Decimal(raw)
    except InvalidOperation:
        raise ConversionError(f"{raw[:40]!r} is not a number") from None
    if not number.is_finite():
        raise ConversionError(f"{raw[:40]!r} is not a finite number")
    return number


def _normalized(number: Decimal) -> Decimal:
    # normalize() rounds to the context's precision (28 by default); give it every digit.
    return number.normalize(Context(prec=max(1, len(number.as_tuple().digits))))


def canonical_number(number: Decimal) -> str:
    """The one spelling of a number, as DynamoDB returns it: `1E+2` -> `100`, `1.50` -> `1.5`, `-0` -> `0`."""
    if number == 0:
        return "0"
    return format(_normalized(number), "f")


def _numeric(precision: int | None, scale: int | None) -> Converter:
    def convert(tag: str, raw: Any) -> str:
        number = parse_number(raw)
        if precision is not None and number != 0:
            exponent = _normalized(number).as_tuple().exponent
            assert isinstance(exponent, int)
            if -exponent > (scale or 0):
                raise ConversionError(
                    f"{raw} has more than {scale or 0} decimal places for numeric({precision},{scale or 0})"
                )
            if number.adjusted() + 1 > precision - (scale or 0):
                raise ConversionError(f"{raw} does not fit numeric({precision},{scale or 0})")
        return canonical_number(number)

    return convert


def _integer(sql: str) -> Converter:
    low, high = _INT_RANGES[sql]

    def convert(tag: str, raw: Any) -> int:
        if isinstance(raw, str) and raw.isdigit():
            value = int(raw)  # the usual spelling, without a Decimal round trip
        else:
            number = parse_number(raw)
            if number != number.to_integral_value():
                raise ConversionError(f"{raw} is not a whole number for {sql}")
            value = int(number)
        if not low <= value <= high:
            raise ConversionError(f"{raw} is out of range for {sql}")
        return value

    return convert


def _double(tag: str, raw: Any) -> float:
    value = float(parse_number(raw))
    if math.isinf(value):
        raise ConversionError(f"{raw} is out of range for double precision")
    return value


def _timestamp(tag: str, raw: Any) -> str:
    """ISO 8601 text (no offset: UTC) or epoch seconds (DynamoDB TTL attributes) -> an ISO instant."""
    if tag == "N":
        seconds = parse_number(raw)
        try:
            instant = EPOCH + timedelta(seconds=float(seconds))
        except OverflowError:
            raise ConversionError(f"{raw} epoch seconds is out of range for timestamptz") from None
        return instant.isoformat()
    return _instant(raw).isoformat()


def _instant(raw: Any) -> datetime:
    if not isinstance(raw, str):
        raise ConversionError(f"expected an ISO 8601 string, got {type(raw).__name__}")
    try:
        instant = datetime.fromisoformat(raw)
    except ValueError:
        raise ConversionError(f"{raw[:60]!r} is not an ISO 8601 date and time") from None
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=timezone.utc)


def _date(tag: str, raw: Any) -> str:
    """ISO 8601 date, or a date and time taken in UTC."""
    if isinstance(raw, str) and len(raw) == 10:
        try:
            return date.fromisoformat(raw).isoformat()
        except ValueError:
            raise ConversionError(f"{raw!r} is not an ISO 8601 date") from None
    return _instant(raw).astimezone(timezone.utc).date().isoformat()


def _boolean(tag: str, raw: Any) -> bool:
    if not isinstance(raw, bool):
        raise ConversionError(f"expected true or false, got {raw!r:.40}")
    return raw


def decode_binary(raw: Any) -> bytes:
    """Binary arrives base64-encoded in Lambda's JSON and as bytes from boto3; accept both."""
    if isinstance(raw, (bytes, bytearray)):
        return bytes(raw)
    if not isinstance(raw, str):
        raise ConversionError(f"expected base64 binary, got {type(raw).__name__}")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ConversionError("binary value is not valid base64") from None


def _bytea(tag: str, raw: Any) -> bytes:
    return decode_binary(raw)


# --- structured values: sets as arrays, lists and maps as JSON ----------------------------------


def to_plain(tag: str, raw: Any) -> Any:
    """DynamoDB JSON to plain JSON values: numbers as exact Decimals, binary as base64 text.

    Written by hand because boto3's TypeDeserializer builds sets and Binary objects that JSON cannot
    hold and expects binary as bytes, while Lambda delivers it as base64 text.
    """
    if tag == "S":
        _text(None)(tag, raw)
        return raw
    if tag == "N":
        return parse_number(raw)
    if tag == "B":
        return base64.b64encode(decode_binary(raw)).decode("ascii")
    if tag == "BOOL":
        return _boolean(tag, raw)
    if tag == "NULL":
        return None
    if tag in ("SS", "NS", "BS"):
        if not isinstance(raw, list):
            raise ConversionError(f"expected a list for {tag}, got {type(raw).__name__}")
        return sorted(to_plain(tag[0], item) for item in raw)
    if tag == "L":
        if not isinstance(raw, list):
            raise ConversionError(f"expected a list for L, got {type(raw).__name__}")
        return [to_plain(*typed_value(item)) for item in raw]
    if tag == "M":
        if not isinstance(raw, dict):
            raise ConversionError(f"expected a map for M, got {type(raw).__name__}")
        return {name: to_plain(*typed_value(item)) for name, item in raw.items()}
    raise ConversionError(f"unknown DynamoDB type {tag!r}")


def typed_value(value: Any) -> tuple[str, Any]:
    """Split `{"S": "x"}` into its type tag and raw value."""
    if type(value) is not dict or len(value) != 1:
        raise ConversionError(f"not a DynamoDB typed value: {str(value)[:60]}")
    ((tag, raw),) = value.items()
    if tag not in _TYPE_SET:
        raise ConversionError(f"unknown DynamoDB type {tag!r}")
    return tag, raw


def to_json(value: Any) -> str:
    """JSON text with Decimals written exactly, ready for a jsonb column."""
    return simplejson.dumps(value, use_decimal=True, ensure_ascii=False, separators=(",", ":"))


def _jsonb(tag: str, raw: Any) -> str:
    return storable(to_json(to_plain(tag, raw)))


# --- the table --------------------------------------------------------------------------------

# Structured values travel as JSON text and become jsonb or arrays on the server.
_JSONB_EXPRESSION = "({})::jsonb"
_SET_EXPRESSION = (
    "CASE WHEN {0} IS NULL THEN NULL ELSE ARRAY(SELECT {1} FROM jsonb_array_elements_text({0}::jsonb) AS e) END"
)


def _fixed_types() -> dict[str, ColumnType]:
    types = [
        ColumnType("text", frozenset({"S"}), pg.TEXT(), "text", _text(None)),
        ColumnType("numeric", frozenset({"N"}), pg.NUMERIC(), "numeric", _numeric(None, None)),
        ColumnType("double precision", frozenset({"N"}), pg.DOUBLE_PRECISION(), "float8", _double, exact=False),
        ColumnType("boolean", frozenset({"BOOL"}), pg.BOOLEAN(), "boolean", _boolean),
        # Inexact: distinct spellings (offsets, a time of day) become one value; no key may use them.
        ColumnType(
            "timestamptz", frozenset({"S", "N"}), pg.TIMESTAMP(timezone=True), "timestamptz", _timestamp, exact=False
        ),
        ColumnType("date", frozenset({"S"}), pg.DATE(), "date", _date, exact=False),
        ColumnType("bytea", frozenset({"B"}), pg.BYTEA(), "bytea", _bytea),
        ColumnType("jsonb", frozenset(DYNAMODB_TYPES), pg.JSONB(), "text", _jsonb, _JSONB_EXPRESSION),
        ColumnType(
            "text[]", frozenset({"SS"}), pg.ARRAY(pg.TEXT()), "text", _jsonb, _SET_EXPRESSION.replace("{1}", "e")
        ),
        ColumnType(
            "numeric[]",
            frozenset({"NS"}),
            pg.ARRAY(pg.NUMERIC()),
            "text",
            _jsonb,
            _SET_EXPRESSION.replace("{1}", "e::numeric"),
        ),
        ColumnType(
            "bytea[]",
            frozenset({"BS"}),
            pg.ARRAY(pg.BYTEA()),
            "text",
            _jsonb,
            _SET_EXPRESSION.replace("{1}", "decode(e, 'base64')"),
        ),
    ]
    types += [
        ColumnType(name, frozenset({"N"}), sa, "bigint", _integer(name))
        for name, sa in (("smallint", pg.SMALLINT()), ("integer", pg.INTEGER()), ("bigint", pg.BIGINT()))
    ]
    return {t.sql: t for t in types}


COLUMN_TYPES = _fixed_types()
_ALIASES = {
    "int": "integer",
    "int4": "integer",
    "int8": "bigint",
    "int2": "smallint",
    "bool": "boolean",
    "float8": "double precision",
    "decimal": "numeric",
    "character varying": "varchar",
    "timestamp with time zone": "timestamptz",
}
_PARAMETERISED = re.compile(r"^(varchar|numeric)\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)$")


def column_type(sql: str) -> ColumnType:
    """Resolve a SQL type as written in a mapping; `ValueError` lists what is allowed."""
    text = " ".join(sql.lower().split())
    text = _ALIASES.get(text, text)
    if text in COLUMN_TYPES:
        return COLUMN_TYPES[text]
    match = _PARAMETERISED.match(text)
    if match:
        base, first, second = match.group(1), int(match.group(2)), match.group(3)
        if base == "varchar" and second is None and first > 0:
            return ColumnType(f"varchar({first})", frozenset({"S"}), pg.VARCHAR(first), "text", _text(first))
        if base == "numeric" and 0 < first <= 1000 and 0 <= int(second or 0) <= first:
            scale = int(second or 0)
            return ColumnType(
                f"numeric({first},{scale})",
                frozenset({"N"}),
                pg.NUMERIC(first, scale),
                "numeric",
                _numeric(first, scale),
            )
    allowed = ", ".join([*COLUMN_TYPES, "varchar(n)", "numeric(p,s)"])
    raise ValueError(f"unsupported SQL type {sql!r} (allowed: {allowed})")
