"""A lint of SQL statements for MySQL 8.0 (Aurora MySQL 3): constructs MySQL rejects
(MariaDB-only syntax and functions) or deprecates, found by rules on the statement text and
by parsing each statement with sqlglot's MySQL dialect.

The project's statements are recorded from the server's general log while real code runs
(`test_mysql8_mode.py`), so what is linted is what was sent, not what a builder was meant to
build. References: MySQL 8.0 manual, "INSERT ... ON DUPLICATE KEY UPDATE" (VALUES() deprecated
in 8.0.20), "Features Deprecated in MySQL 8.0"; MariaDB KB, "Incompatibilities and Feature
Differences Between MariaDB and MySQL".
"""

from __future__ import annotations

import re

import sqlglot
import sqlglot.errors

_RULES: list[tuple[str, re.Pattern[str]]] = [
    (
        "VALUES(col) in ON DUPLICATE KEY UPDATE is deprecated since MySQL 8.0.20 (use the "
        "SELECT's columns, or a row alias)",
        re.compile(r"ON\s+DUPLICATE\s+KEY\s+UPDATE\b.*\bVALUES\s*\(", re.I | re.S),
    ),
    ("CREATE OR REPLACE is MariaDB-only", re.compile(r"\bCREATE\s+OR\s+REPLACE\b", re.I)),
    ("RETURNING is MariaDB-only", re.compile(r"\bRETURNING\b", re.I)),
    (
        "IF [NOT] EXISTS on an index, column, partition or constraint is MariaDB-only",
        re.compile(
            r"\b(ADD|DROP|CREATE(\s+UNIQUE)?)\s+(INDEX|KEY|COLUMN|PARTITION|CONSTRAINT)\s+"
            r"IF\s+(NOT\s+)?EXISTS\b",
            re.I,
        ),
    ),
    ("ALTER TABLE IF EXISTS is MariaDB-only", re.compile(r"\bALTER\s+TABLE\s+IF\s+EXISTS", re.I)),
    ("SET STATEMENT ... FOR is MariaDB-only", re.compile(r"\bSET\s+STATEMENT\b", re.I)),
    (
        "system versioning is MariaDB-only",
        re.compile(r"\bSYSTEM\s+VERSIONING\b|\bFOR\s+SYSTEM_TIME\b", re.I),
    ),
    ("LIMIT ROWS EXAMINED is MariaDB-only", re.compile(r"\bROWS\s+EXAMINED\b", re.I)),
    (
        "a MariaDB-only function",
        re.compile(
            r"\b(JSON_NORMALIZE|JSON_DETAILED|JSON_COMPACT|JSON_LOOSE|JSON_EQUALS|JSON_EXISTS|"
            r"SFORMAT|NATURAL_SORT_KEY|NEXTVAL|LASTVAL|SETVAL|MEDIAN|ROWNUM|COLUMN_CREATE|"
            r"COLUMN_GET|COLUMN_JSON|DECODE_ORACLE)\s*\(",
            re.I,
        ),
    ),
    ("a MariaDB sequence-engine table", re.compile(r"\bseq_\d+_to_\d+\b", re.I)),
    ("the Aria engine is MariaDB-only", re.compile(r"\bENGINE\s*=?\s*Aria\b", re.I)),
    ("a MariaDB executable comment", re.compile(r"/\*M!|/\*!1\d{5}")),
    (
        "SQL_CALC_FOUND_ROWS / FOUND_ROWS() are deprecated since MySQL 8.0.17",
        re.compile(r"\bSQL_CALC_FOUND_ROWS\b|\bFOUND_ROWS\s*\(", re.I),
    ),
    (
        "INTERSECT / EXCEPT need MySQL 8.0.31 (Aurora MySQL 3 releases start at 8.0.23)",
        re.compile(r"\b(INTERSECT|EXCEPT)\b", re.I),
    ),
]
_STRING = re.compile(r"'(?:[^'\\]|\\.|'')*'")
# statements sqlglot's MySQL grammar does not cover, checked by the rules only
_UNPARSED = re.compile(r"^\s*(LOAD\s+DATA|SHOW\s|SET\s+(SESSION|GLOBAL|@@|NAMES)|KILL\s)", re.I)
# sqlglot's MySQL grammar lacks RANGE COLUMNS partitioning: the clause is parsed away
_PARTITION_CLAUSE = re.compile(r"\n?(/\*!50500 )?PARTITION\s+BY\s+RANGE\s+COLUMNS.*\Z", re.I | re.S)


def lint(statement: str) -> list[str]:
    """What MySQL 8.0 would reject or deprecate in `statement` (empty: nothing found)."""
    text = _STRING.sub("''", statement)  # a literal never trips a rule
    problems = [message for message, rule in _RULES if rule.search(text)]
    if not _UNPARSED.match(statement):
        try:
            sqlglot.parse_one(_PARTITION_CLAUSE.sub("", statement), read="mysql")
        except sqlglot.errors.ParseError as exc:
            problems.append(f"does not parse as MySQL (sqlglot): {str(exc).splitlines()[0]}")
    return problems
