"""Single-table design in the mapping: which entity an item is, and how its key becomes columns and back.

A key template such as `CUSTOMER#{customer_id}` reads a DynamoDB key attribute into typed columns
and rebuilds the key from them, so a row can always be found from its DynamoDB key (deletes,
`check`, restores). A match rule says which entity an item is: a key attribute equal to a value or
starting with a prefix, or a non-key attribute equal to a value. Both are plain data parsed from the
mapping file; nothing here touches a database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class TemplateError(ValueError):
    """A template that cannot work; the caller adds the table and entity to the message."""


@dataclass(frozen=True)
class KeyTemplate:
    """A string key attribute as literal text around placeholders; the last placeholder takes the rest."""

    attribute: str
    text: str
    literals: tuple[str, ...]  # one more than the placeholders: text before, between and after them
    placeholders: tuple[str, ...]
    pattern: re.Pattern[str]

    def parse(self, value: str) -> dict[str, str] | None:
        """The placeholders' text in `value`, or None if it does not fit."""
        found = self.pattern.fullmatch(value)
        return None if found is None else dict(zip(self.placeholders, found.groups()))

    def build(self, parts: dict[str, str]) -> str:
        """The key attribute's value from the placeholders' text."""
        pieces = [self.literals[0]]
        for name, literal in zip(self.placeholders, self.literals[1:]):
            pieces += [parts[name], literal]
        return "".join(pieces)


def parse_template(attribute: str, text: Any) -> KeyTemplate:
    """`CUSTOMER#{customer_id}` -> a template; placeholders need literal text between them."""
    if not isinstance(text, str):
        raise TemplateError(f'the template of {attribute} must be a string such as "CUSTOMER#{{customer_id}}"')
    placeholders = tuple(_PLACEHOLDER.findall(text))
    if not placeholders:
        raise TemplateError(f"template {text!r} has no {{placeholder}}; match a constant key with `match` instead")
    if len(set(placeholders)) != len(placeholders):
        raise TemplateError(f"template {text!r} names a placeholder twice")
    literals = tuple(_PLACEHOLDER.split(text)[::2])
    if any(not literal for literal in literals[1:-1]):
        raise TemplateError(f"template {text!r} puts two placeholders side by side; separate them with text")
    if "{" in "".join(literals) or "}" in "".join(literals):
        raise TemplateError(f"template {text!r}: placeholders are {{name}}, a letter or _ then letters, digits, _")
    regex = re.escape(literals[0])
    for position, literal in enumerate(literals[1:]):
        last = position == len(placeholders) - 1
        regex += ("(.+)" if last else "(.+?)") + re.escape(literal)
    return KeyTemplate(attribute, text, literals, placeholders, re.compile(regex, re.DOTALL))


@dataclass(frozen=True)
class MatchRule:
    """One condition of an entity's rule: `attribute` equals `equals`, or its string starts with `prefix`."""

    attribute: str
    equals: str | None = None
    prefix: str | None = None

    def matches(self, image: dict[str, Any]) -> bool:
        value = image.get(self.attribute)
        if type(value) is not dict or len(value) != 1:
            return False
        ((tag, raw),) = value.items()
        if self.prefix is not None:
            return tag == "S" and raw.startswith(self.prefix)
        return tag in ("S", "N") and str(raw) == self.equals

    def describe(self) -> str:
        if self.prefix is not None:
            return f"{self.attribute} starts with {self.prefix!r}"
        return f"{self.attribute} = {self.equals!r}"


def parse_rules(declared: Any) -> tuple[MatchRule, ...]:
    """`{ SK = "PROFILE" }`, `{ SK = { prefix = "ORDER#" } }`, `{ entity = "Order" }`; all must hold."""
    if not isinstance(declared, dict) or not declared:
        raise TemplateError('`match` must be a table such as { SK = "PROFILE" } or { SK = { prefix = "ORDER#" } }')
    rules = []
    for attribute, condition in declared.items():
        if isinstance(condition, (str, int)) and not isinstance(condition, bool):
            rules.append(MatchRule(attribute, equals=str(condition)))
        elif isinstance(condition, dict) and set(condition) == {"prefix"} and isinstance(condition["prefix"], str):
            rules.append(MatchRule(attribute, prefix=condition["prefix"]))
        else:
            raise TemplateError(f'match on {attribute}: expected a value or {{ prefix = "..." }}, got {condition!r}')
    return tuple(rules)
