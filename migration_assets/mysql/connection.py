"""MySQL connection settings from `MIGRATION_MYSQL_URL`, and connections that always close.

Why a module of its own: every path to the database (assets, checks, the devstack, the
benchmarks) must agree on the session settings the pipeline depends on (UTC, local infile,
autocommit off), and must never let the password reach a log, metadata or an exception.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import pymysql
import pymysql.connections
import pymysql.constants
import pymysql.cursors

_DATABASE_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")


class MySQLUrlError(ValueError):
    """`MIGRATION_MYSQL_URL` is malformed; the message never contains the password."""


@dataclass(frozen=True)
class MySQLSettings:
    host: str
    port: int = 3306
    user: str = "root"
    password: str = field(default="", repr=False)
    database: str = "migration"
    connect_timeout_s: int = 10
    read_timeout_s: int | None = None
    ssl_ca: str | None = None  # CA bundle: TLS required, the server's certificate verified
    ssl_verify_identity: bool = False  # and its name (host) checked against the certificate

    def __str__(self) -> str:
        return self.redacted_url

    def _query(self) -> str:
        options = []
        if self.ssl_ca:
            options.append(("ssl_ca", self.ssl_ca))
        if self.ssl_verify_identity:
            options.append(("ssl_verify_identity", "true"))
        return f"?{urlencode(options, quote_via=quote)}" if options else ""

    @property
    def redacted_url(self) -> str:
        """The URL with the password masked: safe for logs and metadata (the CA file's path
        is no secret)."""
        secret = ":***" if self.password else ""
        return (
            f"mysql://{quote(self.user, safe='')}{secret}@{self.host}:{self.port}/{self.database}"
            + self._query()
        )

    @property
    def url(self) -> str:
        """The full URL, password included: for child processes' environment only."""
        secret = f":{quote(self.password, safe='')}" if self.password else ""
        return (
            f"mysql://{quote(self.user, safe='')}{secret}@{self.host}:{self.port}/{self.database}"
            + self._query()
        )

    def with_database(self, database: str) -> MySQLSettings:
        return replace(self, database=validate_database_name(database))


def validate_database_name(name: str) -> str:
    if not _DATABASE_NAME.fullmatch(name):
        raise MySQLUrlError("the database name must be 1-64 letters, digits or underscores")
    return name


_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


def _tls_options(query: str) -> dict[str, Any]:
    """`ssl_ca=<path>` (PEM CA bundle, e.g. RDS's global-bundle.pem) and
    `ssl_verify_identity=true|false` from the URL's query."""
    options: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == "ssl_ca":
            if not os.path.isfile(value):
                raise MySQLUrlError(
                    f"MIGRATION_MYSQL_URL ssl_ca: no file at {value!r} (a PEM CA bundle; "
                    "URL-encode the path's special characters)"
                )
            options["ssl_ca"] = value
        elif key == "ssl_verify_identity":
            if value.lower() not in _TRUE | _FALSE:
                raise MySQLUrlError("MIGRATION_MYSQL_URL ssl_verify_identity must be true or false")
            options["ssl_verify_identity"] = value.lower() in _TRUE
        else:
            raise MySQLUrlError(
                f"MIGRATION_MYSQL_URL has an unknown option {key[:40]!r}; known: ssl_ca, "
                "ssl_verify_identity"
            )
    return options


def parse_mysql_url(url: str) -> MySQLSettings:
    """Parse `mysql://user:password@host:port/database[?ssl_ca=...&ssl_verify_identity=true]`;
    the password may be URL-encoded.

    Refuses anything ambiguous (a second `@`, a `#`, a `?` or `/` in the password): such a
    URL would put part of an unencoded password into the host or database name, and from
    there into logs. Messages never echo the URL's user, password or host.
    """
    text = url.strip()
    scheme, separator, rest = text.partition("://")
    netloc, _, path = rest.partition("/")
    database_part, _, query = path.partition("?")
    if separator and (
        netloc.count("@") > 1 or "#" in text or "?" in netloc or "/" in database_part or "@" in path
    ):
        raise MySQLUrlError(
            "MIGRATION_MYSQL_URL is ambiguous: URL-encode special characters in the password "
            "(@ as %40, / as %2F, # as %23, ? as %3F, : as %3A)"
        )
    try:
        parts = urlsplit(url.strip())
        port = parts.port or 3306
    except ValueError as exc:
        raise MySQLUrlError(
            f"MIGRATION_MYSQL_URL is not a valid URL ({type(exc).__name__})"
        ) from None
    if parts.scheme not in ("mysql", "mysql+pymysql", "mariadb"):
        raise MySQLUrlError(
            f"MIGRATION_MYSQL_URL must start with mysql://, not {parts.scheme or '(nothing)'}://"
        )
    if not parts.hostname:
        raise MySQLUrlError("MIGRATION_MYSQL_URL has no host (expected mysql://user@host:port/db)")
    database = unquote(parts.path.lstrip("/")) or "migration"
    return MySQLSettings(
        host=parts.hostname,
        port=port,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        database=validate_database_name(database),
        **_tls_options(parts.query),
    )


class MySQLConnectError(RuntimeError):
    """Connecting failed; carries the server's error code but never the password."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


class _Connection(pymysql.connections.Connection):
    """pymysql (1.2) builds a new default SSL context for every connection in its preferred
    TLS mode, loading the system CA store each time: ~27 ms per connection, measured as 12 s
    of a 30-day backfill run (its checks and copies open ~360 connections). That default
    context never differs, so it is built once and shared (SSLContext is shareable); explicit
    TLS settings still get their own."""

    def _create_ssl_ctx(self, sslp: Any) -> ssl.SSLContext:
        if sslp == {}:
            return _preferred_ssl_context()
        return super()._create_ssl_ctx(sslp)


@functools.cache
def _preferred_ssl_context() -> ssl.SSLContext:
    return pymysql.connections.Connection._create_ssl_ctx(None, {})  # type: ignore[arg-type]


@functools.cache
def _verified_ssl_context(ca: str | None, verify_identity: bool) -> ssl.SSLContext:
    """TLS required and the server's certificate verified against `ca` (the system store
    when None), its name checked when `verify_identity`; built once per setting. Given as a
    context, pymysql refuses a server that offers no TLS instead of going on in clear."""
    context = ssl.create_default_context(cafile=ca)
    context.check_hostname = verify_identity
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def _tls(settings: MySQLSettings) -> dict[str, Any]:
    if not settings.ssl_ca and not settings.ssl_verify_identity:
        return {}  # pymysql's preferred mode: TLS when the server offers it, unverified
    return {"ssl": _verified_ssl_context(settings.ssl_ca, settings.ssl_verify_identity)}


def open_connection(settings: MySQLSettings, *, database: bool = True) -> pymysql.Connection:
    """A new connection with the session settings the pipeline relies on.

    UTC session time zone, so DATETIME values and per-second buckets never shift;
    `local_infile` so bulk loads can stream from the client; autocommit off, so every
    write is an explicit transaction; FOUND_ROWS, so an UPDATE reports the rows it matched
    (not only those it changed) and the merge can count without extra queries.
    """
    try:
        return _Connection(
            host=settings.host,
            port=settings.port,
            user=settings.user,
            password=settings.password,
            database=settings.database if database else None,
            charset="utf8mb4",
            local_infile=True,
            autocommit=False,
            client_flag=pymysql.constants.CLIENT.FOUND_ROWS,
            connect_timeout=settings.connect_timeout_s,
            read_timeout=settings.read_timeout_s,
            init_command="SET time_zone = '+00:00'",
            cursorclass=pymysql.cursors.Cursor,
            **_tls(settings),
        )
    except pymysql.err.MySQLError as exc:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        detail = _scrub(str(exc.args[1]) if len(exc.args) > 1 else str(exc), settings.password)
        raise MySQLConnectError(
            f"cannot connect to MySQL at {settings.redacted_url}: {detail}", code
        ) from None


@contextlib.contextmanager
def connection(settings: MySQLSettings, *, database: bool = True) -> Iterator[pymysql.Connection]:
    """A connection that is closed however the block ends; rolled back unless committed."""
    conn = open_connection(settings, database=database)
    try:
        yield conn
    except BaseException:
        with contextlib.suppress(Exception):
            conn.rollback()
        raise
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def read_committed(conn: Any) -> None:
    """The session's next transactions read committed rows only, and take no gap locks:
    chunks of one day on several connections do not block each other."""
    with conn.cursor() as cur:
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")


_ZERO_DATE_MODES = frozenset({"NO_ZERO_DATE", "NO_ZERO_IN_DATE"})


@contextlib.contextmanager
def legacy_dates(conn: Any) -> Iterator[None]:
    """The block runs with the session's sql_mode minus NO_ZERO_DATE and NO_ZERO_IN_DATE
    (strict mode kept), then the mode is restored: a table made on MySQL 5.6 may have
    `DEFAULT '0000-00-00 00:00:00'` or hold zero dates, which MySQL 5.7/8.0's default
    sql_mode refuses in DDL (1067) and in an INSERT ... SELECT copying them (1292). For the
    BIGINT copy's DDL and copy statements only: they carry what the legacy table holds."""
    with conn.cursor() as cur:
        cur.execute("SELECT @@SESSION.sql_mode")
        (saved,) = cur.fetchone()
        relaxed = ",".join(m for m in saved.split(",") if m and m not in _ZERO_DATE_MODES)
        if relaxed == saved:
            yield
            return
        cur.execute("SET SESSION sql_mode = %s", (relaxed,))
        try:
            yield
        finally:
            cur.execute("SET SESSION sql_mode = %s", (saved,))


def ensure_database(settings: MySQLSettings) -> None:
    """Create the configured database if it does not exist (name validated, then quoted)."""
    name = validate_database_name(settings.database)
    with connection(settings, database=False) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")
        conn.commit()
