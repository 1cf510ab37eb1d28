"""Generic S3 reads and writes: errors that name the object, GETs repeated when the body
breaks off, bounded-memory MD5 of an object."""

from __future__ import annotations

import base64
import hashlib
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from botocore.exceptions import (
    ClientError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from urllib3.exceptions import ProtocolError

_HASH_CHUNK = 1024 * 1024
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
# errors while reading a response body, after botocore's own retries are over (the ones
# s3transfer retries for downloads); the whole GET is repeated
_STREAM_ERRORS = (
    ResponseStreamingError,
    IncompleteReadError,
    ReadTimeoutError,
    TimeoutError,
    ConnectionError,
)
_STREAM_ATTEMPTS = 5
T = TypeVar("T")


class S3ObjectError(RuntimeError):
    """An S3 object could not be read or written (access denied, repeated broken
    responses...). botocore's messages name the operation, not the object; this one names
    both, so an operator can go straight to the bucket policy or the key."""

    def __init__(self, operation: str, bucket: str, key: str, problem: str) -> None:
        super().__init__(f"cannot {operation} s3://{bucket}/{key}: {problem}")
        self.bucket = bucket
        self.key = key


def client_error(operation: str, bucket: str, key: str, exc: ClientError) -> S3ObjectError:
    error = exc.response.get("Error", {})
    problem = f"{error.get('Code', 'error')} ({error.get('Message', '')})"
    return S3ObjectError(operation, bucket, key, problem)


def put_bytes(s3: Any, bucket: str, key: str, body: bytes, **extra: Any) -> None:
    """`put_object`, with an error that names the object."""
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, **extra)
    except ClientError as exc:
        raise client_error("write", bucket, key, exc) from exc


def is_missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in _MISSING_CODES


def open_body(s3: Any, bucket: str, key: str) -> Any | None:
    """The object's StreamingBody, or None when it does not exist (other errors propagate,
    naming the object)."""
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"]
    except ClientError as exc:
        if is_missing(exc):
            return None
        raise client_error("read", bucket, key, exc) from exc


def read_object(s3: Any, bucket: str, key: str, consume: Callable[[Any], T]) -> T | None:
    """`consume(body)` of the object, or None when it does not exist.

    botocore retries a request until its response headers arrive; a connection broken
    while the body streams (reset, short read, read timeout) surfaces from `read()`, and
    one broken while botocore reads an error response's body (the 404 of an absent
    object) escapes as urllib3's ProtocolError: neither is retried by botocore. Here the
    whole GET is repeated, with a short growing pause (found by `test_faults.py`).
    """
    for attempt in range(1, _STREAM_ATTEMPTS + 1):
        try:
            body = open_body(s3, bucket, key)
        except ProtocolError as exc:  # an error response (a 404...) broke off: botocore
            broken: Exception = exc  # reads its body outside its retries
        else:
            if body is None:
                return None
            try:
                return consume(body)
            except _STREAM_ERRORS as exc:
                broken = exc
            finally:
                body.close()  # not `with body`: that would yield the raw urllib3 stream
        if attempt == _STREAM_ATTEMPTS:
            raise S3ObjectError(
                "read", bucket, key, f"the response broke off {attempt} times: {broken}"
            ) from broken
        time.sleep(random.uniform(0, 0.2 * 2**attempt))
    raise AssertionError("unreachable")  # pragma: no cover


def get_object_bytes(s3: Any, bucket: str, key: str) -> bytes | None:
    """The object's bytes, or None when it does not exist (any other error propagates)."""
    return read_object(s3, bucket, key, lambda body: body.read())


def stream_md5_b64(s3: Any, bucket: str, key: str) -> str | None:
    """Base64 MD5 of an object, hashed in chunks so memory stays bounded; None if absent."""

    def md5_of(body: Any) -> str:
        digest = hashlib.md5()
        for chunk in body.iter_chunks(chunk_size=_HASH_CHUNK):
            digest.update(chunk)
        return base64.b64encode(digest.digest()).decode("ascii")

    return read_object(s3, bucket, key, md5_of)
