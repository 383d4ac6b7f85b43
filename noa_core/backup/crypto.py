"""Blob identity and encryption at rest.

Without encryption a blob's id is the BLAKE3 hash of its plaintext, like restic's
SHA-256 ids. With encryption the id is BLAKE3 in *keyed* mode (a MAC), so the names
in the repository reveal nothing about content to whoever can list the bucket, and
every stored object is AES-256-GCM (``nonce || ciphertext || tag``). Keys come from a
password through scrypt (salt and cost kept in the repository config) and HKDF-style
domain separation with keyed BLAKE3.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from blake3 import blake3

from noa_core.backup.interface import BackupBadInput, BackupError

NONCE_BYTES = 12
KEY_CHECK = b"noa-backup-key-check-v1"


class IntegrityError(BackupError):
    """Stored bytes do not decrypt or do not hash to their name."""


@dataclass(frozen=True)
class KdfParams:
    salt: str  # hex
    n: int = 2 ** 15
    r: int = 8
    p: int = 1

    @staticmethod
    def fresh() -> "KdfParams":
        return KdfParams(salt=os.urandom(16).hex())


class Keys:
    """Blob-id hashing and sealing for one repository (plain or encrypted)."""

    def __init__(self, id_key: bytes | None = None, enc_key: bytes | None = None) -> None:
        self._id_key = id_key
        self._aead = None
        if enc_key is not None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            self._aead = AESGCM(enc_key)

    @property
    def encrypted(self) -> bool:
        return self._aead is not None

    @staticmethod
    def plain() -> "Keys":
        return Keys()

    @staticmethod
    def from_password(password: str, kdf: KdfParams) -> "Keys":
        if not password:
            raise BackupBadInput("an empty backup password is refused")
        master = hashlib.scrypt(password.encode("utf-8"), salt=bytes.fromhex(kdf.salt), n=kdf.n, r=kdf.r,
                                p=kdf.p, maxmem=256 * 1024 * 1024, dklen=32)
        enc = blake3(b"noa-backup aes-256-gcm", key=master).digest()
        ident = blake3(b"noa-backup blob-id", key=master).digest()
        return Keys(id_key=ident, enc_key=enc)

    def blob_id(self, data: bytes | memoryview) -> str:
        if self._id_key is None:
            return blake3(data, max_threads=1).hexdigest()
        return blake3(data, key=self._id_key, max_threads=1).hexdigest()

    def seal(self, data: bytes) -> bytes:
        if self._aead is None:
            return data
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data, None)

    def open(self, data: bytes | memoryview, what: str = "object") -> bytes:
        if self._aead is None:
            return bytes(data)
        from cryptography.exceptions import InvalidTag

        if len(data) < NONCE_BYTES + 16:
            raise IntegrityError(f"{what} is truncated")
        try:
            return self._aead.decrypt(bytes(data[:NONCE_BYTES]), bytes(data[NONCE_BYTES:]), None)
        except InvalidTag:
            raise IntegrityError(f"{what} does not decrypt (corrupted, or not this repository's key)") from None

    def key_check(self) -> str:
        return self.seal(KEY_CHECK).hex()

    def verify_check(self, check_hex: str) -> None:
        try:
            ok = self.open(bytes.fromhex(check_hex), "key check") == KEY_CHECK
        except IntegrityError:
            ok = False
        if not ok:
            raise BackupBadInput("wrong backup password for this repository")
