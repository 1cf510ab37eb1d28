"""The dialect lint finds what MySQL 8.0 rejects or deprecates (so a clean run means
something); the statements the project sends are linted in test_mysql8_mode.py."""

from __future__ import annotations

import pytest

from migration_assets_tests.sql_dialect import lint


@pytest.mark.parametrize(
    "statement, found",
    [
        ("INSERT INTO t (a) SELECT s.a FROM u s ON DUPLICATE KEY UPDATE a = VALUES(a)", "8.0.20"),
        ("CREATE OR REPLACE TABLE t (a INT)", "MariaDB-only"),
        ("DELETE FROM t WHERE a = 1 RETURNING a", "MariaDB-only"),
        ("ALTER TABLE t ADD INDEX IF NOT EXISTS i (a)", "MariaDB-only"),
        ("ALTER TABLE t DROP PARTITION IF EXISTS p1", "MariaDB-only"),
        ("SET STATEMENT max_statement_time = 1 FOR SELECT 1", "MariaDB-only"),
        ("SELECT JSON_NORMALIZE(a) FROM t", "MariaDB-only function"),
        ("SELECT seq FROM seq_1_to_10", "sequence-engine"),
        ("SELECT SQL_CALC_FOUND_ROWS a FROM t LIMIT 1", "8.0.17"),
        ("SELECT a FROM t WHERE", "does not parse"),
    ],
)
def test_the_lint_finds_what_mysql8_rejects_or_deprecates(statement, found):
    problems = lint(statement)
    assert problems and any(found in p for p in problems), problems


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO `t` (`a`) SELECT s.`a` FROM `u` s ON DUPLICATE KEY UPDATE `a` = s.`a`",
        "SELECT 'CREATE OR REPLACE', 'RETURNING' FROM t",  # literals are not syntax
        "CREATE TABLE IF NOT EXISTS `t` (`a` LONGTEXT CHECK (JSON_VALID(`a`)))",
        "LOAD DATA LOCAL INFILE '/tmp/x' INTO TABLE `t` FIELDS TERMINATED BY '\\t'",
    ],
)
def test_portable_statements_pass(statement):
    assert lint(statement) == []
