"""S3 backend (boto3). A single PUT is atomic in S3: readers see the old object or the new one.

Credentials follow boto3's chain (environment, shared config, instance role) unless
given explicitly (from the ``noa-backup-repository`` block); ``endpoint_url`` points at
MinIO, moto or any S3-compatible store.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from noa_core.backup.interface import (
    BackendUnavailable,
    BackupBackend,
    BackupError,
    ObjectInfo,
    ObjectMissing,
    check_key,
)


class S3Backend(BackupBackend):
    name = "s3"

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 region: str | None = None, access_key_id: str | None = None,
                 secret_access_key: str | None = None, session_token: str | None = None,
                 create_bucket: bool = True) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        cfg = Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=16,
                     connect_timeout=10, read_timeout=120)
        self.client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region or "us-east-1",
                                   aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key,
                                   aws_session_token=session_token, config=cfg)
        self._errors = _client_errors()
        if create_bucket:
            self._ensure_bucket()

    def describe(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"s3:{self.bucket}/{self.prefix}{where}"

    def _ensure_bucket(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except self._errors as exc:
            if _code(exc) in ("404", "NoSuchBucket", "NotFound"):
                try:
                    self.client.create_bucket(Bucket=self.bucket)
                    return
                except self._errors as exc2:
                    raise BackendUnavailable(f"cannot create bucket {self.bucket}: {_msg(exc2)}") from None
            raise BackendUnavailable(f"cannot reach bucket {self.bucket}: {_msg(exc)}") from None

    def _k(self, key: str) -> str:
        return self.prefix + check_key(key)

    def put(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._k(key), Body=data)
        except self._errors as exc:
            raise BackupError(f"cannot write {key} to {self.describe()}: {_msg(exc)}") from None

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self._k(key)}
        if offset or length is not None:
            if length == 0:
                return b""
            end = "" if length is None else str(offset + length - 1)
            args["Range"] = f"bytes={offset}-{end}"
        try:
            return self.client.get_object(**args)["Body"].read()
        except self._errors as exc:
            if _code(exc) in ("NoSuchKey", "404", "NotFound"):
                raise ObjectMissing(key) from None
            raise BackupError(f"cannot read {key} from {self.describe()}: {_msg(exc)}") from None

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._k(key))
            return True
        except self._errors as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise BackupError(f"cannot check {key} in {self.describe()}: {_msg(exc)}") from None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                         Prefix=self.prefix + prefix)
            for page in pages:
                for obj in page.get("Contents", ()):
                    yield ObjectInfo(obj["Key"][len(self.prefix):], int(obj["Size"]))
        except self._errors as exc:
            raise BackupError(f"cannot list {self.describe()}: {_msg(exc)}") from None

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._k(key))
        except self._errors as exc:
            if _code(exc) not in ("NoSuchKey", "404"):
                raise BackupError(f"cannot delete {key} from {self.describe()}: {_msg(exc)}") from None

    def close(self) -> None:
        self.client.close()


def _client_errors() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (ClientError, BotoCoreError)


def _code(exc: BaseException) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _msg(exc: BaseException) -> str:
    return " ".join(str(exc).split())
