"""The ``noa-backup-repository`` block: where backups go and the credentials to get there.

Every credential is a ``SecretStr`` (access keys, Azure connection string, repository
password); the password may instead live in a Prefect ``Secret`` block named by
``password_secret_block``. ``backend_config()`` turns the block into the Prefect-free
:class:`noa_core.backup.service.BackendConfig` the backup code uses.
"""

from __future__ import annotations

from typing import Literal

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from noa_core.backup.service import BackendConfig


class NoaBackupRepository(Block):
    """A backup repository: local directory, S3 bucket or Azure Blob container."""

    _block_type_name = "NOA Backup Repository"
    _block_type_slug = "noa-backup-repository"
    _description = "Where NOA ARK OS backups are stored (local, S3, Azure Blob), credentials and encryption key."

    kind: Literal["local", "s3", "azure"] = Field("local", description="backend")
    location: str = Field(..., description="directory, S3 bucket or Azure container")
    prefix: str = Field("", description="key prefix inside the bucket/container")
    endpoint_url: str | None = Field(None, description="S3-compatible endpoint (MinIO, moto); empty for AWS")
    region: str | None = Field(None, description="S3 region")
    access_key_id: SecretStr | None = Field(None, description="S3 access key id (default: boto3 credential chain)")
    secret_access_key: SecretStr | None = Field(None, description="S3 secret access key")
    connection_string: SecretStr | None = Field(None, description="Azure Storage connection string")
    account_url: str | None = Field(None, description="Azure account URL (azure-identity) if no connection string")
    password: SecretStr | None = Field(None, description="repository password (encryption key source)")
    password_secret_block: str | None = Field(None, description="name of a Prefect Secret block holding the password")
    encrypt: bool | None = Field(None, description="default: on for s3/azure, on locally when a password is set")

    def backend_config(self) -> BackendConfig:
        password = self.password.get_secret_value() if self.password else None
        if password is None and self.password_secret_block:
            from prefect.blocks.system import Secret

            password = str(Secret.load(self.password_secret_block, _sync=True).get())
        secret = lambda s: s.get_secret_value() if s else None  # noqa: E731
        return BackendConfig(kind=self.kind, location=self.location, prefix=self.prefix,
                             endpoint_url=self.endpoint_url, region=self.region,
                             access_key_id=secret(self.access_key_id),
                             secret_access_key=secret(self.secret_access_key),
                             connection_string=secret(self.connection_string), account_url=self.account_url,
                             password=password, encrypt=self.encrypt)


def load_backend_config(name: str) -> BackendConfig:
    """The :class:`BackendConfig` of the saved block ``name`` (a BadInput if there is none)."""
    from noa_core.backup.interface import BackupBadInput

    try:
        block = NoaBackupRepository.load(name, _sync=True)  # sync even from a flow's worker thread
    except ValueError as exc:
        raise BackupBadInput(f"no noa-backup-repository block named {name!r}: {exc}") from None
    return block.backend_config()
