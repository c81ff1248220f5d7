"""``micropay open … --from-safe SAFE --signer KEYFILE``: a company wallet funds, a hot key pays.

Nothing is sent from here: the channel's payer is the Safe, which only its owners can move. The
command writes a Safe{Wallet} Transaction Builder batch (:mod:`micropay.safe_batch`) that opens
the channel, records the channel in this store as opened elsewhere (:meth:`Payer.prepare_open`:
its key is known, the Safe as payer, the salt chosen here, the hot key as signer), and says what
to do next: import the file in the Safe app, execute it, run ``micropay sync``; then ``micropay
pay`` signs with the hot key.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from micropay.channel import ETH
from micropay.cli.context import Session
from micropay.cli.output import emit, hex_id, progress, when
from micropay.cli.signers import keep_signer, load_signer
from micropay.errors import MicropayValueError
from micropay.payer import Payer
from micropay.safe_batch import batch_file, open_calls, safe_info, write_batch
from micropay.types import MAX_AMOUNT


def open_from_safe(session: Session, *, safe: str, payee: str, deposit: int, token: str, seconds: int,
                   window: int, signer_file: Path, out: Path | None, as_json: bool) -> None:
    """Write the batch that opens a channel from ``safe`` to ``payee``, keep the signer's key file
    and record the channel, unseen. Raises :class:`MicropayValueError` for a Safe, signer or payee
    that cannot make this channel, or a batch file that exists; :class:`KeystoreError` for a signer
    key file that cannot be opened."""
    if deposit > MAX_AMOUNT:
        raise MicropayValueError("the deposit is above the escrow's maximum (2**96 - 1 base units)")
    escrow = session.client_escrow()
    info = safe_info(escrow, safe)
    if payee == info.address:
        raise MicropayValueError("the freelancer is the Safe itself: a channel pays someone else")
    hot = load_signer(signer_file)  # decrypted once: a channel whose signer cannot be opened is of no use
    if hot.address in (payee, info.address):
        raise MicropayValueError(f"the --signer key is the {'freelancer' if hot.address == payee else 'Safe'} "
                                 f"({hot.address}): name a hot key of your own")
    if hot.address in info.owners:
        progress(f"note: the signer {hot.address} is an owner of the Safe; a hot key of its own keeps the owners' "
                 "keys out of everyday payments")
    salt = secrets.randbits(64)
    path = out if out is not None else Path(f"open-{payee}-{salt}.json")
    if path.exists():
        raise MicropayValueError(f"{path} already exists: choose another file (--out FILE)")
    shown = session.show(deposit, token)
    held = escrow.balance(info.address) if token == ETH else escrow.token(token).balance_of(info.address)
    payer = Payer(escrow, info.address, session.store, signer=hot)
    keep_signer(session.paths, signer_file)  # before the channel is recorded: `pay` must find its key
    record, call, value = payer.prepare_open(payee, deposit, token, seconds, window=window, salt=salt)
    try:
        calls = open_calls(escrow, record.key, deposit, (call, value))
        expiry = record.expiry
        batch = batch_file(escrow.chain_id, info.address, calls, name=f"micropay: open a channel to {payee}",
                           description=(f"Locks {shown} in escrow {escrow.address} for freelancer {payee} until "
                                        f"{when(expiry)}; payments are signed by {hot.address}. Channel "
                                        f"{hex_id(record.id)}."))
        write_batch(path, batch)
    except BaseException:
        with session.store.transaction() as tx:  # no batch: no channel to wait for either
            tx.forget_unopened(record.ref)
        raise
    if held < deposit:
        progress(f"note: the Safe holds {session.show(held, token)}, less than the deposit {shown}: fund it before "
                 "executing the batch, or the batch fails")
    steps = [
        (f"1. import {path} in the Safe app's Transaction Builder (Safe {info.address} on chain {escrow.chain_id}: "
         "Apps > Transaction Builder > drag the file in);"),
        f"2. have {info.threshold} of its {len(info.owners)} owners sign it and execute it, before {when(expiry)};",
        "3. run `micropay sync`: then `micropay pay` signs each payment with the hot key.",
    ]
    emit(as_json, {"channel": hex_id(record.id), "payer": info.address, "signer": hot.address, "file": str(path),
                   "deposit": str(deposit), "expiry": expiry, "transactions": len(calls)},
         f"channel {hex_id(record.id)}\nwrote {path}: {len(calls)} transaction(s) for Safe {info.address} that lock "
         f"{shown} for freelancer {payee} until {when(expiry)}; payments will be signed by {hot.address}\n"
         "next:\n" + "\n".join(f"  {step}" for step in steps))
