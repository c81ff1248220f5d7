"""Encrypted key files (eth-account's keystore format, scrypt): never a key in plain text."""

from __future__ import annotations

import json
import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from micropay._utils import bounded
from micropay._utils.addresses import normalize
from micropay.errors import KeystoreError


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def save_account(account: LocalAccount, directory: Path, password: str, *, iterations: int | None = None) -> Path:
    """Encrypt ``account`` into ``directory``/<address>.json (mode 0600, never overwritten).

    ``iterations`` is scrypt's work factor; leave it to eth-account's default (2**18) except in
    tests, where a file that opens in milliseconds is what is wanted.

    Raises KeystoreError if ``password`` is empty or the file already exists, and OSError if the
    directory or file cannot be written (FileExistsError if another process creates it first)."""
    if not password:
        raise KeystoreError("refusing to write a key file with an empty password")
    path = Path(directory) / f"{account.address}.json"
    if path.exists():
        raise KeystoreError(f"{path} already exists")
    _write_private(path, json.dumps(Account.encrypt(account.key, password, iterations=iterations)))
    return path


def new_account(directory: Path, password: str) -> tuple[LocalAccount, Path]:
    """A fresh random account, saved encrypted into ``directory`` (see :func:`save_account`).

    Raises KeystoreError or OSError as :func:`save_account` does."""
    account: LocalAccount = Account.create()
    return account, save_account(account, directory, password)


def import_key(private_key: str, directory: Path, password: str) -> tuple[LocalAccount, Path]:
    """The account of a hex private key, saved encrypted into ``directory`` (see :func:`save_account`).

    Raises KeystoreError if ``private_key`` is not a valid secp256k1 key, and KeystoreError or
    OSError as :func:`save_account` does."""
    try:
        account: LocalAccount = Account.from_key(private_key)
    except Exception:  # noqa: BLE001 - eth-account raises several kinds for a bad key
        raise KeystoreError("that is not a valid private key (64 hex digits)") from None
    return account, save_account(account, directory, password)


def list_accounts(directory: Path) -> list[tuple[str, Path]]:
    """(address, path) of every key file in ``directory``; files that are not keystores are skipped.

    A missing directory gives an empty list and a file that cannot be read or parsed is skipped;
    only an OSError listing the directory itself propagates."""
    found: list[tuple[str, Path]] = []
    for path in sorted(Path(directory).glob("*.json")) if Path(directory).is_dir() else []:
        try:
            document = _read_key_file(path)
        except KeystoreError:
            continue
        address = document.get("address") if isinstance(document, dict) else None
        normalized = normalize("0x" + address.removeprefix("0x")) if isinstance(address, str) else None
        if normalized is not None:
            found.append((normalized[0], path))
    return found


#: A key file is a few hundred bytes; anything far larger is not one.
MAX_KEY_FILE_BYTES = 64 * 1024


def _read_key_file(path: Path) -> object:
    """The parsed JSON of a key file, bounded in size and nesting before it is parsed.

    Raises KeystoreError if it is missing, unreadable, too large, too deep or not JSON."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeystoreError(f"no key file at {path} (create one with `micropay account new`)") from None
    except OSError:
        raise KeystoreError(f"{path} is not a readable key file") from None
    return bounded.loads(data, what=f"key file {path}", max_bytes=MAX_KEY_FILE_BYTES, error=KeystoreError)


def address_of(path: Path) -> str:
    """The address a key file is for, read without decrypting it (no password needed).

    Raises KeystoreError if the file is missing, unreadable, or names no valid address."""
    path = Path(path)
    data = _read_key_file(path)
    address = data.get("address") if isinstance(data, dict) else None
    normalized = normalize("0x" + address.removeprefix("0x")) if isinstance(address, str) else None
    if normalized is None:
        raise KeystoreError(f"{path} names no address: is it an encrypted key file?")
    return normalized[0]


def load_account(path: Path, password: str) -> LocalAccount:
    """Decrypt a key file.

    Raises KeystoreError (that never echoes the password) if the file is missing, unreadable,
    not an encrypted key file, malformed, or the password is wrong."""
    path = Path(path)
    data = _read_key_file(path)
    if not isinstance(data, dict) or ("crypto" not in data and "Crypto" not in data):
        raise KeystoreError(f"{path} is not an encrypted key file")
    try:
        key = Account.decrypt(data, password)
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise KeystoreError(f"wrong password for {path}") from None
        raise KeystoreError(f"{path} is a malformed key file") from None
    except Exception:  # noqa: BLE001 - malformed JSON fields raise KeyError/TypeError/...
        raise KeystoreError(f"{path} is a malformed key file") from None
    account: LocalAccount = Account.from_key(key)
    return account
