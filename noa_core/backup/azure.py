"""Azure Blob Storage backend (azure-storage-blob).

Credentials: a connection string (Azurite's well-known development account in the
tests), or an account URL with azure-identity's ``DefaultAzureCredential`` (managed
identity, workload identity, ``az login``). ``upload_blob(overwrite=True)`` of a block
blob commits in one step, so readers never see a partial object.
"""

from __future__ import annotations

from collections.abc import Iterator

from noa_core.backup.interface import (
    BackendUnavailable,
    BackupBackend,
    BackupError,
    ObjectInfo,
    ObjectMissing,
    check_key,
)


class AzureBackend(BackupBackend):
    name = "azure"

    def __init__(self, container: str, prefix: str = "", *, connection_string: str | None = None,
                 account_url: str | None = None, create_container: bool = True) -> None:
        from azure.core.exceptions import AzureError
        from azure.storage.blob import BlobServiceClient

        self._AzureError = AzureError
        self.container = container
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        try:
            if connection_string:
                service = BlobServiceClient.from_connection_string(connection_string)
            elif account_url:
                from azure.identity import DefaultAzureCredential

                service = BlobServiceClient(account_url, credential=DefaultAzureCredential())
            else:
                raise BackendUnavailable("Azure needs a connection string (AZURE_STORAGE_CONNECTION_STRING) "
                                         "or an account URL (AZURE_STORAGE_ACCOUNT_URL) with azure-identity")
            self.account = service.account_name
            self.client = service.get_container_client(container)
            if create_container and not self.client.exists():
                self.client.create_container()
        except AzureError as exc:
            raise BackendUnavailable(f"cannot reach Azure container {container}: {_msg(exc)}") from None

    def describe(self) -> str:
        return f"azure:{self.container}/{self.prefix} (account {self.account})"

    def _k(self, key: str) -> str:
        return self.prefix + check_key(key)

    def put(self, key: str, data: bytes) -> None:
        try:
            self.client.upload_blob(self._k(key), data, overwrite=True, max_concurrency=2)
        except self._AzureError as exc:
            raise BackupError(f"cannot write {key} to {self.describe()}: {_msg(exc)}") from None

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            if length == 0:
                return b""
            kw = {"offset": offset, "length": length} if (offset or length is not None) else {}
            return self.client.download_blob(self._k(key), max_concurrency=2, **kw).readall()
        except ResourceNotFoundError:
            raise ObjectMissing(key) from None
        except self._AzureError as exc:
            raise BackupError(f"cannot read {key} from {self.describe()}: {_msg(exc)}") from None

    def exists(self, key: str) -> bool:
        try:
            return bool(self.client.get_blob_client(self._k(key)).exists())
        except self._AzureError as exc:
            raise BackupError(f"cannot check {key} in {self.describe()}: {_msg(exc)}") from None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        try:
            for blob in self.client.list_blobs(name_starts_with=self.prefix + prefix):
                yield ObjectInfo(blob.name[len(self.prefix):], int(blob.size))
        except self._AzureError as exc:
            raise BackupError(f"cannot list {self.describe()}: {_msg(exc)}") from None

    def delete(self, key: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self.client.delete_blob(self._k(key))
        except ResourceNotFoundError:
            return
        except self._AzureError as exc:
            raise BackupError(f"cannot delete {key} from {self.describe()}: {_msg(exc)}") from None

    def close(self) -> None:
        self.client.close()


def _msg(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300]
