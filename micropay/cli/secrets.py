"""Secrets the command reads: the key file's password and a private key, never from arguments.

The password comes from ``MICROPAY_PASSWORD`` or a hidden prompt on the terminal. Without a
terminal (a pipe, cron, a service) there is nobody to ask: the command says to set the
variable instead of letting Python read a password from stdin with its ``GetPassWarning``.
"""

from __future__ import annotations

import os
import sys

import click

from micropay.errors import KeystoreError

#: What to do when a password is needed and there is no terminal to ask on.
NO_TERMINAL = "no terminal to ask for the key file's password on: set MICROPAY_PASSWORD"


def has_terminal() -> bool:
    """True when a hidden prompt can be shown: the controlling terminal is there (getpass reads
    /dev/tty, not stdin), or on Windows, stdin is a console."""
    if sys.platform == "win32":
        return sys.stdin is not None and sys.stdin.isatty()
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return False
    os.close(fd)
    return True


def password(confirm: bool = False) -> str:
    """``MICROPAY_PASSWORD``, or a hidden prompt on stderr (never echoed, never an argument).

    Raises KeystoreError if neither is possible."""
    value = os.environ.get("MICROPAY_PASSWORD")
    if value is not None:
        return value
    if not has_terminal():
        raise KeystoreError(NO_TERMINAL)
    return str(click.prompt("password", hide_input=True, confirmation_prompt=confirm, err=True))


def private_key() -> str:
    """A private key from a hidden prompt, or one line of stdin when it is piped in."""
    if not has_terminal():
        line = str(sys.stdin.readline() if sys.stdin is not None else "").strip()
        if not line:
            raise KeystoreError("no private key on stdin (pipe it in, or run this in a terminal)")
        return line
    return str(click.prompt("private key", hide_input=True, err=True))
