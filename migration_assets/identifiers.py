"""SQL identifiers from the spec: validated once, then always quoted.

Table and column names cannot be bound as query parameters, so every name that reaches SQL
must pass `validate_identifier` (letters, digits, underscore; at most 64 characters, MySQL's
limit) and is emitted through `quote_identifier`. Nothing else is ever interpolated into SQL.
"""

from __future__ import annotations

import re

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def is_identifier(name: object) -> bool:
    return isinstance(name, str) and bool(_IDENTIFIER.fullmatch(name))


def validate_identifier(name: object, what: str = "identifier") -> str:
    if not is_identifier(name):
        raise ValueError(
            f"{what} {name!r} is not a safe SQL identifier "
            "(letters, digits and underscores, starting with a letter or underscore, at most 64)"
        )
    return name  # type: ignore[return-value]


def quote_identifier(name: str) -> str:
    """Backtick-quote a validated identifier; refuses anything unvalidated."""
    return f"`{validate_identifier(name)}`"


def quote_identifiers(names: list[str] | tuple[str, ...]) -> str:
    return ", ".join(quote_identifier(name) for name in names)
