"""boto3 clients with explicit retry settings (botocore's defaults change between versions).

Endpoint, region and credentials are deliberately left to boto3's standard resolution, so
`AWS_ENDPOINT_URL`, `AWS_REGION`/`AWS_DEFAULT_REGION` and the credential chain work exactly as
users expect from every other AWS tool; nothing secret ever passes through our config.
"""

from __future__ import annotations

from typing import Any, Literal

import boto3
from botocore.config import Config

RetryMode = Literal["standard", "adaptive", "legacy"]


def retry_config(
    max_attempts: int,
    mode: RetryMode = "standard",
    connect_timeout_s: float = 10,
    read_timeout_s: float = 60,
) -> Config:
    return Config(
        retries={"mode": mode, "total_max_attempts": max_attempts},
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
    )


def aws_client(
    service: str,
    *,
    region_name: str | None = None,
    endpoint_url: str | None = None,
    config: Config | None = None,
) -> Any:
    """A client for `service`; `None` settings fall back to boto3's environment handling."""
    return boto3.session.Session().client(
        service, region_name=region_name, endpoint_url=endpoint_url, config=config
    )
