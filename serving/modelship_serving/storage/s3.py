"""s3:// through boto3, with credentials from the environment or mounted secrets only.

The session is built from explicit values so botocore never falls back to its
ambient chain (instance metadata, ~/.aws files); with no key at all the
requests go unsigned, which is what a public bucket needs. An endpoint
(AWS_ENDPOINT_URL[_S3]) selects an S3-compatible store and path-style
addressing.
"""

from __future__ import annotations

import logging
from pathlib import Path

from modelship_serving.storage.errors import FetchFailed, UnsupportedUri

log = logging.getLogger(__name__)


def fetch_s3(bucket: str, key: str, staging: Path, *, credentials: dict[str, str]) -> Path:
    """Download s3://bucket/key: the object itself, or every object under key/."""
    if not bucket:
        raise UnsupportedUri("s3:// URI names no bucket (s3://<bucket>/<key>)")
    client = _client(credentials)
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        objects = _list(client, bucket, key)
        if not objects:
            raise FetchFailed(f"s3://{bucket}/{key} holds no objects")
        single = len(objects) == 1 and objects[0] == key and not key.endswith("/")
        if single:
            target = staging / Path(key).name
            client.download_file(bucket, key, str(target))
        else:
            target = staging / "fetched"
            prefix = key.rstrip("/") + "/" if key else ""
            for name in objects:
                relative = name[len(prefix):]
                if not relative or relative.endswith("/"):
                    continue
                path = (target / relative).resolve()
                if target.resolve() not in path.parents:
                    raise FetchFailed(f"object key {name!r} escapes the model directory")
                path.parent.mkdir(parents=True, exist_ok=True)
                client.download_file(bucket, name, str(path))
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise FetchFailed(f"s3://{bucket}/{key}: {error.get('Code', 'error')} "
                          f"{error.get('Message', '')}") from None
    except BotoCoreError as exc:
        raise FetchFailed(f"s3://{bucket}/{key}: {exc}") from None
    log.info("Downloaded %d object(s) from s3://%s/%s.", len(objects), bucket, key)
    return target


def _list(client: object, bucket: str, key: str) -> list[str]:
    """The key itself if it is an object, else every key under key/."""
    paginator = client.get_paginator("list_objects_v2")  # type: ignore[attr-defined]
    names: list[str] = []
    for page in paginator.paginate(Bucket=bucket, Prefix=key):
        names.extend(item["Key"] for item in page.get("Contents", []))
    if key in names:
        return [key]
    prefix = key.rstrip("/") + "/" if key else ""
    return [n for n in names if n.startswith(prefix)]


def _client(values: dict[str, str]) -> object:
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    endpoint = values.get("AWS_ENDPOINT_URL_S3") or values.get("AWS_ENDPOINT_URL")
    region = values.get("AWS_REGION") or values.get("AWS_DEFAULT_REGION") or "us-east-1"
    access = values.get("AWS_ACCESS_KEY_ID")
    secret = values.get("AWS_SECRET_ACCESS_KEY")
    options: dict[str, object] = {"retries": {"max_attempts": 3, "mode": "standard"}}
    if endpoint:
        options["s3"] = {"addressing_style": "path"}
    if not (access and secret):
        options["signature_version"] = UNSIGNED
        log.info("No S3 credentials in the environment or secret files: requests go unsigned.")
    session = boto3.session.Session(
        aws_access_key_id=access if access and secret else None,
        aws_secret_access_key=secret if access and secret else None,
        aws_session_token=values.get("AWS_SESSION_TOKEN") if access and secret else None,
        region_name=region,
    )
    log.info("Using S3 endpoint %s.", endpoint or "(AWS default)")
    return session.client("s3", endpoint_url=endpoint, config=Config(**options))
