"""Hot keys: the key a channel's vouchers are signed with when it is not the key that funds it.

``micropay open --signer KEYFILE`` names an encrypted key file whose key signs every payment on
the new channel, while the client's own key (or, with ``--from-safe``, a Safe) funds it. The key
file is kept, still encrypted, in the data directory's ``signers`` folder under its address, so
``micropay pay`` finds the key a channel needs by the signer address the channel's key commits
to; ``pay --signer KEYFILE`` names another copy of it.

Its password is ``MICROPAY_SIGNER_PASSWORD``, else ``MICROPAY_PASSWORD``, else a hidden prompt.
"""

from __future__ import annotations

import os
from pathlib import Path

import click
from eth_account.signers.local import LocalAccount

from micropay import keystore
from micropay.cli.secrets import has_terminal
from micropay.config import Paths
from micropay.errors import KeystoreError

__all__ = ["keep_signer", "kept_signer", "kept_signer_path", "load_signer", "signer_password", "signers_dir"]


def signers_dir(paths: Paths) -> Path:
    """The folder of kept signer key files in a data directory. Never raises."""
    return paths.home / "signers"


def kept_signer_path(paths: Paths, address: str) -> Path:
    """Where the key file of the signer ``address`` is kept (it may not be there). Never raises."""
    return signers_dir(paths) / f"{address}.json"


def signer_password(address: str) -> str:
    """The signer key file's password: ``MICROPAY_SIGNER_PASSWORD``, else ``MICROPAY_PASSWORD``,
    else a hidden prompt. Raises :class:`KeystoreError` if there is none and no terminal to ask on."""
    for variable in ("MICROPAY_SIGNER_PASSWORD", "MICROPAY_PASSWORD"):
        value = os.environ.get(variable)
        if value is not None:
            return value
    if not has_terminal():
        raise KeystoreError("no terminal to ask for the signer key file's password on: set MICROPAY_SIGNER_PASSWORD")
    return str(click.prompt(f"password of the signer key {address}", hide_input=True, err=True))


def load_signer(path: Path, expected: str | None = None) -> LocalAccount:
    """The key in the encrypted key file ``path``, decrypted. Raises :class:`KeystoreError` if the
    file is missing or not a key file, the password is wrong, or (with ``expected``) it holds
    another address's key."""
    address = keystore.address_of(path)
    if expected is not None and address != expected:
        raise KeystoreError(f"{path} holds the key of {address}, but this channel's payments are signed by {expected}")
    account = keystore.load_account(path, signer_password(address))
    if account.address != address:
        raise KeystoreError(f"{path} says it holds {address} but its key is {account.address}")
    return account


def keep_signer(paths: Paths, path: Path) -> Path:
    """Copy the key file ``path`` (still encrypted) into the data directory's signers folder, mode
    0600, unless that signer's key file is kept already. Returns where it is kept. Raises
    :class:`KeystoreError` for a file that is not a key file, and OSError if it cannot be written."""
    address = keystore.address_of(path)
    kept = kept_signer_path(paths, address)
    if kept.exists():
        return kept
    data = Path(path).read_bytes()
    kept.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(kept, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return kept


def kept_signer(paths: Paths, address: str) -> LocalAccount:
    """The kept key of the signer ``address``, decrypted. Raises :class:`KeystoreError` if it is not
    kept here (with what to do) or cannot be decrypted."""
    path = kept_signer_path(paths, address)
    if not path.exists():
        raise KeystoreError(f"this channel's payments are signed by {address}, whose key file is not in "
                            f"{signers_dir(paths)}: pass it with --signer KEYFILE")
    return load_signer(path, address)
