"""Every failure micropay raises publicly is a subclass of :class:`MicropayError`.

Where callers expect a built-in, the class inherits it too (``except ValueError`` keeps
working), the way web3.py does it.
"""

from __future__ import annotations


class MicropayError(Exception):
    """Root of every micropay error."""


class MicropayValueError(MicropayError, ValueError):
    """An argument or input is malformed or out of range."""


class ArtifactError(MicropayError):
    """The shipped contract artifact is missing or unreadable (a broken installation)."""


class ContractRevert(MicropayError):
    """The escrow contract reverted. ``name`` is the Solidity custom error, ``args`` its values."""

    def __init__(self, name: str, args: dict[str, object] | None = None, message: str | None = None) -> None:
        self.name = name
        self.args_by_name = dict(args or {})
        detail = ", ".join(f"{key}={value!r}" for key, value in self.args_by_name.items())
        super().__init__(message or f"escrow reverted with {name}({detail})")


class InvalidVoucher(MicropayValueError):
    """A voucher is malformed, corrupt, or does not verify."""


class InvalidSignature(InvalidVoucher):
    """A voucher's signature is malformed, malleable, or not the expected payer's."""


class DomainMismatch(InvalidVoucher):
    """A voucher is for another chain or another escrow than the caller expects."""


class LedgerMismatch(MicropayValueError):
    """A list of task receipts does not match a voucher's amount or ledger root."""
