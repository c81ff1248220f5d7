"""Backups: a store's channels, vouchers and ledgers as one verifiable JSON bundle.

Each voucher in a bundle carries its signature and receipts, so whoever imports it can verify
everything; a checksum over the whole catches a truncated or edited file.

Version 2 adds each channel's voucher ``signer`` (null: the payer signs). A bundle is written as
version 1, which every micropay reads, unless a channel has a signer: an older micropay would
rebuild that channel's key without it, so it must refuse the bundle instead. Both are read.

Version 3 adds agreed plans and their feedback (``plans``, ``feedback``: the signed documents,
see :mod:`micropay.bundle_plans`), and each channel's ``terms`` (0x-hex, null: not known). By
the same reasoning a bundle is written as version 3 only if it holds a plan or feedback: an
older micropay skips fields it does not know, so it would import such a bundle and silently lose
the only copy of documents that exist nowhere on chain; it must refuse it instead. ``terms``
alone does not raise the version: they are read from the chain (the channel's ChannelOpened
event), which `micropay sync` does for a channel stored without them, so an older micropay that
skips them loses nothing. Every version is read; one without plans imports as before.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from micropay._utils import bounded
from micropay.bundle_plans import BundledPlans, export_plans, merge_plans, parse_plans, verify_plans
from micropay.channel import ChannelKey
from micropay.errors import InvalidSignature, MicropayError, StoreError
from micropay.ledger import Ledger, TaskReceipt, extend_entries, verify_ledger
from micropay.records import ChannelRecord
from micropay.voucher import Voucher

if TYPE_CHECKING:
    from micropay.escrow import Escrow
    from micropay.store import StoreTransaction, VoucherStore

FORMAT = "micropay-bundle"
VERSION = 3
#: The versions :func:`import_bundle` reads.
VERSIONS = (1, 2, 3)
#: The largest bundle :func:`load_bundle` reads unless told otherwise.
MAX_BUNDLE_BYTES = 256 * 1024 * 1024


def load_bundle(data: str | bytes, *, max_bytes: int = MAX_BUNDLE_BYTES) -> object:
    """Parse a bundle file's text, bounded in size and nesting before it is parsed. Raises
    :class:`StoreError` for anything too large, too deep or not JSON; check the result with
    :func:`import_bundle`."""
    return bounded.loads(data, what="bundle", max_bytes=max_bytes, error=StoreError)


def export_bundle(store: VoucherStore) -> dict[str, Any]:
    """Every channel of ``store`` with its terms, ledger and best voucher, and every plan version
    and piece of feedback, as portable JSON."""
    channels = []
    for record in store.channels():
        best = store.best_voucher(record.ref)
        ledger = store.ledger(record.ref)
        channels.append({
            "chainId": record.chain_id, "escrow": record.escrow, "role": record.role,
            "payer": record.key.payer, "payee": record.key.payee, "token": record.key.token,
            "salt": str(record.key.salt), "deposit": str(record.deposit), "claimed": str(record.claimed),
            "expiry": record.expiry, "window": record.window, "closed": record.closed,
            "issued": str(record.issued), "observedAt": record.observed_at, "signer": record.key.signer,
            "terms": None if record.terms is None else "0x" + record.terms.hex(),
            "voucher": None if best is None else best[0].to_dict(),
            "receipts": [entry.receipt.to_dict() for entry in ledger[: best[1] if best else 0]],
        })
    plans, feedback = export_plans(store)
    version = VERSION if plans or feedback else 2 if any(item["signer"] is not None for item in channels) else 1
    body: dict[str, Any] = {"format": FORMAT, "version": version, "channels": channels, "plans": plans,
                            "feedback": feedback}
    return {**body, "sha256": bundle_digest(body)}


def import_bundle(store: VoucherStore, bundle: object, *, account: str | None = None,
                  escrows: Sequence[Escrow] = ()) -> int:
    """Merge an :func:`export_bundle` bundle into ``store``. Everything is verified before anything
    is written: the checksum, every key, every voucher's signature against its channel's voucher
    signer, every ledger against its voucher, and every plan's and feedback's signatures. A voucher
    replaces the stored one only if it is higher and its ledger extends the stored ledger; a
    channel's terms fill in terms the store does not know; plans and feedback merge with the
    stored ones (:func:`micropay.bundle_plans.merge_plans`). Returns how many channels were added
    or changed.

    A key's signature is checked here; a contract's (EIP-1271, or a key's that is not the signer's
    own) only the chain can judge: through the one of ``escrows`` its channel or plan is on.

    Raises :class:`StoreError` for a malformed or altered bundle, a contract signature on an
    escrow not in ``escrows``, terms that contradict the stored ones, or plans that contradict the
    stored ones; :class:`InvalidVoucher` or :class:`LedgerMismatch` for a voucher or ledger that
    does not verify, :class:`InvalidPlan` for a plan or feedback that does not; the store is
    unchanged. With ``account``, a bundle holding any channel in which ``account`` is not the side
    its role names (a payer channel's payer or its voucher signer), or any plan neither of whose
    parties is ``account`` (or a payer whose vouchers it signs), is refused (:class:`StoreError`):
    nobody else's channels end up in this store."""
    body = _checked(bundle)
    plans = [_parse_channel(item) for item in _channels(body)]
    documents = parse_plans(body)
    if account is not None:
        foreign = [r for r, _, _ in plans
                   if account not in ((r.key.payer, r.key.voucher_signer) if r.role == "payer" else (r.key.payee,))]
        if foreign:
            listed = ", ".join(f"0x{r.id.hex()[:10]} ({r.role} {r.key.payer if r.role == 'payer' else r.key.payee})"
                               for r in foreign[:5])
            raise StoreError(f"the bundle holds {len(foreign)} channel(s) that are not this account's "
                             f"({account}): {listed}; nothing was imported")
    for record, voucher, _ in plans:
        if voucher is not None:
            _verify_signature(record, voucher, escrows)
    owners = None if account is None else {account} | {
        r.key.payer for r, _, _ in plans if r.role == "payer" and r.key.voucher_signer == account}
    verify_plans(store, documents, owners=owners, escrows=escrows)
    return _write(store, plans, documents)


def _write(store: VoucherStore, plans: list[tuple[ChannelRecord, Voucher | None, list[TaskReceipt]]],
           documents: BundledPlans) -> int:
    changed = 0
    with store.transaction() as tx:
        for record, voucher, receipts in plans:
            changed += _merge(tx, record, voucher, receipts)
        merge_plans(tx, documents)
    return changed


def _merge(tx: StoreTransaction, record: ChannelRecord, voucher: Voucher | None, receipts: list[TaskReceipt]) -> int:
    changed = 0
    existing = tx.find_channel(record.ref)
    if existing is None and tx.add_channel_if_absent(record):
        existing = record
        changed = 1
    existing = existing or tx.channel(record.ref)
    if record.issued > existing.issued:
        tx.set_issued(record.ref, record.issued)
        changed = 1
    if record.terms is not None and existing.terms != record.terms:
        if existing.terms is not None:
            raise StoreError(f"channel 0x{record.id.hex()}: the bundle's terms 0x{record.terms.hex()} are not the "
                             f"stored 0x{existing.terms.hex()} (a channel's terms never change): nothing was imported")
        tx.set_terms(record.ref, record.terms)
        changed = 1
    if voucher is None:
        return changed
    best = tx.best_voucher(record.ref)
    if best is not None and best[0].amount >= voucher.amount:
        return changed
    stored = tx.ledger(record.ref)
    if [e.receipt for e in stored] != receipts[: len(stored)]:
        raise StoreError(f"channel 0x{record.id.hex()}: the bundle's ledger does not extend the stored one")
    tx.add_receipts(record.ref, len(stored), extend_entries(stored[-1] if stored else None, receipts[len(stored):]))
    tx.add_voucher(voucher, len(receipts), record.ref)
    return 1


def _verify_signature(record: ChannelRecord, voucher: Voucher, escrows: Sequence[Escrow]) -> None:
    """Raises InvalidSignature unless ``voucher`` is signed by its channel's voucher signer."""
    signer = record.key.voucher_signer
    if not voucher.is_contract_signature:
        try:
            voucher.verify(signer)
            return
        except InvalidSignature:
            pass  # a contract signer (a wallet whose owner's key signed) may still accept it
    escrow = next((e for e in escrows if (e.chain_id, e.address) == (record.chain_id, record.escrow)), None)
    if escrow is None:
        if not voucher.is_contract_signature:
            voucher.verify(signer)  # the key that signed is not the signer's, and no chain to ask
        raise StoreError(f"channel 0x{record.id.hex()}'s voucher carries a contract signature, which only the chain "
                         f"can check: import with escrow {record.escrow} on chain {record.chain_id} at hand")
    if not escrow.is_signed_by(signer, voucher.digest(), voucher.signature):
        raise InvalidSignature(f"channel 0x{record.id.hex()}'s voucher is not signed by its signer {signer}")


def _checked(bundle: object) -> dict[str, Any]:
    """``bundle`` if it is a bundle of a version this micropay reads, with a matching checksum."""
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT or bundle.get("version") not in VERSIONS:
        raise StoreError(f"not a micropay bundle (format {FORMAT}, version {' or '.join(map(str, VERSIONS))})")
    if bundle.get("sha256") != bundle_digest(bundle):
        raise StoreError("the bundle's checksum does not match: it was changed or truncated")
    return bundle


def _channels(bundle: dict[str, Any]) -> list[object]:
    channels = bundle.get("channels")
    if not isinstance(channels, list):
        raise StoreError("the bundle has no channel list")
    return channels


def _parse_channel(item: object) -> tuple[ChannelRecord, Voucher | None, list[TaskReceipt]]:
    try:
        if not isinstance(item, dict):
            raise StoreError("a bundle channel must be an object")
        signer = item.get("signer")  # absent from version-1 bundles: the payer signs
        if signer is not None and not isinstance(signer, str):
            raise StoreError("a bundle channel has a bad signer")
        terms = item.get("terms")  # absent from bundles before version 3: not known
        if terms is not None:
            if not isinstance(terms, str) or not terms.startswith("0x") or len(terms) != 66:
                raise StoreError("a bundle channel's terms must be null or 0x and 64 hex digits")
            terms = bytes.fromhex(terms[2:])
        key = ChannelKey(item["payer"], item["payee"], item["token"], int(item["salt"]), signer)
        role = item["role"]
        if role not in ("payer", "payee") or not isinstance(item["chainId"], int):
            raise StoreError("a bundle channel has a bad role or chain id")
        # A bundle from before observedAt was exported holds channels its store had read on chain.
        observed = item.get("observedAt", 1 if int(item["deposit"]) > 0 else 0)
        if not isinstance(observed, int):
            raise StoreError("a bundle channel has a bad observedAt")
        record = ChannelRecord(key, item["chainId"], item["escrow"], role, int(item["deposit"]),
                               int(item["claimed"]), item["expiry"], item["window"], bool(item["closed"]), 0.0,
                               observed, int(item.get("issued", "0")), terms)
        receipts = [TaskReceipt.from_dict(r) for r in item["receipts"]]
        voucher = None if item["voucher"] is None else Voucher.from_dict(item["voucher"])
        if voucher is not None:
            if voucher.channel_id != key.id or (voucher.chain_id, voucher.escrow) != (record.chain_id, record.escrow):
                raise StoreError("a bundle voucher is for another channel, chain or escrow")
            verify_ledger(receipts, voucher)
        elif receipts:
            raise StoreError("a bundle channel has receipts but no voucher")
        Ledger.of(receipts)
        return record, voucher, receipts
    except MicropayError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"a bundle channel is malformed: {exc!r}") from exc


def bundle_digest(bundle: dict[str, Any]) -> str:
    """The checksum a bundle carries: sha256 of its canonical JSON without the checksum."""
    body = {k: v for k, v in bundle.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
