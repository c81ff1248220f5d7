"""The one door to the chain: :class:`Escrow`, a proxy to one deployed MicropayEscrow.

Every read, event query, gas estimate and transaction micropay makes goes through this proxy
(and the :mod:`~micropay.transactions` pipeline it sends with); no other module touches web3
contract objects. Each write checks what it can in Python first (so users get a clear micropay
error, not a raw revert), then estimates, signs, sends and waits for the receipt; a custom-error
revert becomes the matching micropay exception. Reads of many channels are one JSON-RPC batch.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, cast

from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import Web3Exception
from web3.logs import DISCARD

from micropay._utils.reverts import ErrorDecoder
from micropay.artifact import ERC20_ERRORS, load_artifact, matches_artifact
from micropay.channel import ETH, ChannelKey, ChannelState, checked_address
from micropay.errors import (
    ChannelExpired,
    ChannelFinal,
    ChannelNotExpired,
    InsufficientFunds,
    InvalidSignature,
    MicropayValueError,
    NodeError,
    NothingToClaim,
    NotParticipant,
    UnknownChannel,
    UnknownEscrow,
    error_for_revert,
)
from micropay.escrow_events import EscrowEvents
from micropay.packing import pack_key, pack_voucher, pack_vouchers
from micropay.transactions import Hook, Receipt, Sender, TransactionPipeline, TxOptions, as_checksum, sender_address
from micropay.types import MAX_AMOUNT
from micropay.voucher import Voucher

if TYPE_CHECKING:
    from micropay.relay import RelayRequest

def _check_amount(amount: object, what: str) -> None:
    if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount <= MAX_AMOUNT:
        raise MicropayValueError(f"{what} must be a positive integer in base units, at most 2**96 - 1")


class Escrow(EscrowEvents):
    """A proxy to one deployed MicropayEscrow. Creating it makes no network calls."""

    MIN_WINDOW = 3_600
    MAX_WINDOW = 30 * 86_400

    def __init__(self, w3: Web3, address: str, *, from_block: int = 0, chain_id: int | None = None,
                 options: TxOptions | None = None) -> None:
        """``chain_id``, if given, is trusted instead of asked from the node (it is known offline).
        ``options`` set the fee cap, confirmations and timeout of every transaction."""
        abi = load_artifact()["abi"]
        super().__init__(TransactionPipeline(w3, ErrorDecoder(abi + ERC20_ERRORS), error_for_revert, options),
                         chain_id=chain_id)
        self.address = checked_address(address, "escrow address")
        #: The raw web3 contract: for tests and tools that must bypass the prechecks.
        self.contract = w3.eth.contract(address=as_checksum(self.address), abi=abi)
        self.from_block = from_block

    # -- construction ------------------------------------------------------------------

    @classmethod
    def deploy(cls, w3: Web3, account: Sender, *, options: TxOptions | None = None,
               on_deployed: Callable[[str, int], None] | None = None) -> Escrow:
        """Deploy the shipped escrow. ``on_deployed`` is told its address and block as soon as the
        receipt exists, before any confirmation (to record it: a second deploy would be a second
        escrow). Raises :class:`InsufficientFunds`, :class:`TransactionPending` or
        :class:`TransactionError`."""
        artifact = load_artifact()
        factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        pipeline = TransactionPipeline(w3, ErrorDecoder(artifact["abi"]), error_for_revert, options)

        def deployed(receipt: Receipt) -> None:
            if on_deployed is not None and receipt.status == 1 and receipt.contract_address is not None:
                on_deployed(receipt.contract_address, receipt.block_number)

        receipt = pipeline.send(account, factory.constructor(), on_mined=deployed)
        assert receipt.contract_address is not None  # a successful deployment has one
        return cls(w3, receipt.contract_address, from_block=receipt.block_number, options=options)

    @classmethod
    def at(cls, w3: Web3, address: str, *, options: TxOptions | None = None) -> Escrow:
        """The escrow at ``address``, after checking the code there is the shipped contract.

        Raises :class:`UnknownEscrow` if there is no code or other code there."""
        escrow = cls(w3, address, options=options)
        code = bytes(w3.eth.get_code(as_checksum(escrow.address)))
        if not code:
            raise UnknownEscrow(f"no contract at {escrow.address} on chain {escrow.chain_id}")
        if not matches_artifact(code):
            raise UnknownEscrow(f"the contract at {escrow.address} is not the micropay escrow this version ships")
        return escrow

    # -- escrow reads ------------------------------------------------------------------------

    def channel(self, channel: bytes | ChannelKey) -> ChannelState:
        """The channel's state now. Raises :class:`UnknownChannel` if it does not exist."""
        key = channel if isinstance(channel, ChannelKey) else self.key(bytes(channel))
        (state,) = self.channels([key])
        if state is None:
            raise UnknownChannel(f"no channel 0x{key.id.hex()} on escrow {self.address}")
        return state

    def channels(self, keys: Sequence[ChannelKey]) -> list[ChannelState | None]:
        """The state of every channel in ``keys`` at one block (None where there is no such
        channel): one request for the block, then one JSON-RPC batch per :data:`BATCH_SIZE`."""
        block = self.w3.eth.get_block("latest")
        number, timestamp = int(block["number"]), int(block["timestamp"])
        rows = self.call_many([self.contract.functions.channel(key.id) for key in keys], number)
        states: list[ChannelState | None] = []
        for key, row in zip(keys, rows, strict=True):
            deposit, claimed, expiry, window, closed = cast("tuple[int, int, int, int, bool]", row)
            states.append(None if expiry == 0 else
                          ChannelState(key, deposit, claimed, expiry, window, closed, timestamp))
        return states

    def claimed_at(self, channel_ids: Sequence[bytes], block: int) -> list[int]:
        """Each channel's claimed total as of ``block`` (one JSON-RPC batch): what a settlement
        mined in the next block started from."""
        try:
            rows = self.call_many([self.contract.functions.channel(cid) for cid in channel_ids], block)
        except (Web3Exception, ValueError) as exc:  # a node that keeps no state that old, say
            raise NodeError(f"the node could not read block {block}'s state: {exc}") from exc
        return [int(cast("tuple[int, int, int, int, bool]", row)[1]) for row in rows]

    def owed(self, account: str, token: str = ETH) -> int:
        """What the escrow holds for ``account`` after a push to it failed."""
        call = self.contract.functions.owed(checked_address(account, "account"), checked_address(token, "token"))
        return int(call.call())

    def digest(self, voucher: Voucher) -> bytes:
        """The contract's own EIP-712 digest of a voucher."""
        return bytes(self.contract.functions.voucherDigest(voucher.channel_id, voucher.amount,
                                                           voucher.ledger_root).call())

    # -- payer -------------------------------------------------------------------------------

    def open(self, sender: Sender, payee: str, deposit: int, *, token: str | None = None, salt: int | None = None,
             expiry: int, window: int = 86_400, signer: str | None = None, terms: bytes | None = None,
             before_send: Callable[[ChannelKey], None] | None = None) -> tuple[ChannelKey, Receipt]:
        """Open a channel; for a token, the escrow must already be approved for ``deposit``.
        ``signer`` is who signs its vouchers (default: the sender); ``terms`` an optional 32-byte
        hash emitted with the channel. ``before_send`` is given the channel's key once every check
        passed, before the transaction is sent (to record it: the salt is otherwise only in the event).

        Raises :class:`MicropayValueError` for bad arguments, :class:`InsufficientFunds`, or what
        the transaction raises."""
        payer = sender_address(sender)
        token = ETH if token is None else checked_address(token, "token")
        payee = checked_address(payee, "payee")
        if payee in (payer, ETH):
            raise MicropayValueError("the payee must be another, non-zero address")
        _check_amount(deposit, "deposit")
        if not self.MIN_WINDOW <= window <= self.MAX_WINDOW:
            raise MicropayValueError(f"window must be {self.MIN_WINDOW}..{self.MAX_WINDOW} seconds, got {window}")
        if not isinstance(expiry, int) or expiry >= 2**32:
            raise MicropayValueError("expiry must be a unix time before 2106")
        if expiry <= self.now():
            raise MicropayValueError("expiry must be in the future")
        key = ChannelKey(payer, payee, token, secrets.randbits(64) if salt is None else salt, signer)
        if self.channels([key])[0] is not None:
            raise MicropayValueError(f"a channel with salt {key.salt} already exists to this payee; use another salt")
        if key.is_eth:
            balance = self.balance(payer)
            if balance < deposit:
                raise InsufficientFunds(f"{payer} holds {balance} wei, less than the deposit {deposit} (plus gas)")
        call, value = self.open_call(key, deposit, expiry=expiry, window=window, terms=terms)
        if before_send is not None:
            before_send(key)
        receipt = self.unsafe_send(sender, call, value)
        self.remember_opened(key, bytes(32) if terms is None else bytes(terms))
        return key, receipt

    def open_call(self, key: ChannelKey, deposit: int, *, expiry: int, window: int, terms: bytes | None = None
                  ) -> tuple[ContractFunction, int]:
        """The (call, value) that opens ``key``'s channel, for a sender that is not a key of ours
        (a Safe executes it). Raises :class:`MicropayValueError` if ``terms`` is not 32 bytes."""
        terms = bytes(32) if terms is None else bytes(terms)
        if len(terms) != 32:
            raise MicropayValueError("terms must be a 32-byte hash")
        if key.is_eth:
            return self.contract.functions.open(key.payee, key.signer_word, key.salt, expiry, window, terms), deposit
        return self.contract.functions.openToken(key.payee, key.token, key.signer_word, key.salt, deposit, expiry,
                                                 window, terms), 0

    def top_up(self, sender: Sender, key: ChannelKey, amount: int) -> Receipt:
        """Add ``amount`` to the deposit. Raises :class:`NotParticipant`, :class:`ChannelExpired`, …"""
        self._require_role(sender, key.payer, "payer")
        _check_amount(amount, "top-up")
        state = self._live(key)
        if state.deposit + amount > MAX_AMOUNT:
            raise MicropayValueError("the deposit would exceed the escrow's maximum (2**96 - 1)")
        if not state.claimable_next_block:
            raise ChannelExpired("the channel has expired; reclaim it and open a new one")
        call = self.contract.functions.topUp(*key.payer_args(), amount)
        return self.unsafe_send(sender, call, amount if key.is_eth else 0)

    def extend(self, sender: Sender, key: ChannelKey, new_expiry: int) -> Receipt:
        """Move the expiry later. Raises :class:`NotParticipant` or :class:`MicropayValueError`."""
        self._require_role(sender, key.payer, "payer")
        state = self._live(key)
        if new_expiry <= state.expiry or new_expiry >= 2**32:
            raise MicropayValueError(f"the new expiry must be later than {state.expiry} (and before 2106)")
        return self.unsafe_send(sender, self.contract.functions.extend(*key.payer_args(), new_expiry))

    def request_close(self, sender: Sender, key: ChannelKey) -> Receipt:
        """Start the exit. Raises :class:`NotParticipant` or :class:`ChannelExpired`."""
        self._require_role(sender, key.payer, "payer")
        if not self._live(key).claimable_next_block:
            raise ChannelExpired("the channel already expired: reclaim instead")
        return self.unsafe_send(sender, self.contract.functions.requestClose(*key.payer_args()))

    def reclaim(self, sender: Sender, key: ChannelKey) -> Receipt:
        """After expiry, refund the payer. Raises :class:`ChannelNotExpired` before then."""
        self._require_role(sender, key.payer, "payer")
        state = self._live(key)
        if not state.reclaimable_next_block:
            raise ChannelNotExpired(f"the payee may claim until {state.expiry}; reclaim after that")
        return self.unsafe_send(sender, self.contract.functions.reclaim(*key.payer_args()))

    # -- payee (or anyone) ---------------------------------------------------------------------

    def claim(self, sender: Sender, key: ChannelKey, voucher: Voucher) -> Receipt:
        """Claim one voucher. Raises :class:`InvalidSignature`, :class:`ChannelExpired`,
        :class:`NothingToClaim`, …"""
        self._check_voucher(key, voucher)
        state = self._live(key)
        if not state.claimable_next_block:
            raise ChannelExpired(f"the channel expired at {state.expiry}: its vouchers can no longer be claimed")
        if min(voucher.amount, state.deposit) <= state.claimed:
            raise NothingToClaim(f"{state.claimed} is already claimed; this voucher adds nothing")
        call = self.contract.functions.claim(key.payee, key.token, pack_voucher(key, voucher))
        return self.unsafe_send(sender, call)

    def claim_many_gas(self, sender: Sender, payee: str, token: str,
                       items: Sequence[tuple[ChannelKey, Voucher]]) -> int:
        """Gas (with margin) for one claimMany of ``items``; raises what its revert means."""
        return self.pipeline.estimate(sender, self._claim_many_call(payee, token, items))

    def claim_many(self, sender: Sender, payee: str, token: str, items: Sequence[tuple[ChannelKey, Voucher]], *,
                   gas: int | None = None, before_broadcast: Hook | None = None,
                   on_dropped: Hook | None = None) -> Receipt:
        """Claim many channels of one payee and token in one transaction. The hooks are the
        pipeline's (:meth:`TransactionPipeline.send`). Raises :class:`MicropayValueError` for a
        mixed batch, :class:`InvalidSignature` for a bad voucher, or what the transaction raises."""
        return self.pipeline.send(sender, self._claim_many_call(payee, token, items), gas=gas,
                                  before_broadcast=before_broadcast, on_dropped=on_dropped)

    def _claim_many_call(self, payee: str, token: str, items: Sequence[tuple[ChannelKey, Voucher]]
                         ) -> ContractFunction:
        payee, token = checked_address(payee, "payee"), checked_address(token, "token")
        for key, voucher in items:
            if (key.payee, key.token) != (payee, token):
                raise MicropayValueError("every voucher in one claimMany must be for the same payee and token")
            self._check_voucher(key, voucher)
        return self.contract.functions.claimMany(payee, token, pack_vouchers(items))

    def close(self, sender: Sender, key: ChannelKey, voucher: Voucher | None = None) -> Receipt:
        """The payee closes now, with ``voucher`` if any; the rest goes back to the payer."""
        self._require_role(sender, key.payee, "payee")
        self._live(key)
        if voucher is None:
            packed = pack_key(key)
        else:
            self._check_voucher(key, voucher)
            packed = pack_voucher(key, voucher)
        return self.unsafe_send(sender, self.contract.functions.close(key.token, packed))

    def withdraw(self, sender: Sender, token: str = ETH, to: str | None = None) -> Receipt:
        """Withdraw what a failed push left owed. Raises :class:`NothingToClaim` if nothing is."""
        account = sender_address(sender)
        recipient = account if to is None else checked_address(to, "recipient")
        if self.owed(account, token) == 0:
            raise NothingToClaim("nothing is owed to this account in this token")
        return self.unsafe_send(sender, self.contract.functions.withdraw(checked_address(token, "token"), recipient))

    def withdraw_for(self, sender: Sender, account: str, token: str = ETH) -> Receipt:
        """Push what the escrow owes ``account`` to ``account`` itself, with all the gas it needs: anyone
        may send this, for a contract that cannot call the escrow. Raises :class:`NothingToClaim` if
        nothing is owed."""
        account, token = checked_address(account, "account"), checked_address(token, "token")
        if self.owed(account, token) == 0:
            raise NothingToClaim("nothing is owed to this account in this token")
        return self.unsafe_send(sender, self.contract.functions.withdrawFor(account, token))

    # -- relayed claims (micropay.relay makes the checks) ----------------------------------------

    def relay_digest(self, request: RelayRequest) -> bytes:
        """The contract's own EIP-712 digest of a relay request."""
        return bytes(self.contract.functions.relayDigest(request.payee, request.token, request.vouchers_hash,
                                                         request.max_fee, request.deadline).call())

    def claim_relayed_gas(self, sender: Sender, request: RelayRequest, fee: int) -> int:
        """Gas (with margin) for :meth:`claim_relayed`; raises the micropay error its revert means."""
        return self.pipeline.estimate(sender, self._relayed_call(request, fee))

    def claim_relayed(self, sender: Sender, request: RelayRequest, fee: int) -> Receipt:
        """Submit a payee's relay request for ``fee``, WITHOUT prechecks (:class:`~micropay.relay.Relayer`
        makes them): a revert is still decoded into its micropay error."""
        return self.pipeline.send(sender, self._relayed_call(request, fee))

    def _relayed_call(self, r: RelayRequest, fee: int) -> ContractFunction:
        return self.contract.functions.claimRelayed(r.payee, r.token, r.vouchers, r.max_fee, r.deadline, fee,
                                                    r.signature)

    def relayed_in(self, receipt: Receipt) -> tuple[int, int]:
        """(total, fee) of a mined claimRelayed, from its ``Relayed`` event ((0, 0) without one)."""
        events = self.contract.events.Relayed().process_receipt(receipt.web3_receipt, errors=DISCARD)
        return sum(int(e["args"]["total"]) for e in events), sum(int(e["args"]["fee"]) for e in events)

    def unsafe_send(self, sender: Sender, call: ContractFunction, value: int = 0) -> Receipt:
        """Send a raw contract call through the pipeline WITHOUT the proxy's prechecks: a revert
        is still decoded into its micropay error. For tools and tests that need exactly that."""
        return self.pipeline.send(sender, call, value=value)

    # -- internals -------------------------------------------------------------------------------

    def _live(self, key: ChannelKey) -> ChannelState:
        state = self.channel(key)
        if state.closed:
            raise ChannelFinal(f"channel 0x{key.id.hex()} is closed")
        return state

    def _check_voucher(self, key: ChannelKey, voucher: Voucher) -> None:
        if voucher.channel_id != key.id:
            raise InvalidSignature("the voucher is for another channel")
        if (voucher.chain_id, voucher.escrow) != (self.chain_id, self.address):
            raise InvalidSignature(f"the voucher is for escrow {voucher.escrow} on chain {voucher.chain_id}")
        if not self.is_signed_by(key.voucher_signer, voucher.digest(), voucher.signature):
            raise InvalidSignature(f"the voucher is not signed by the channel's signer {key.voucher_signer}")

    @staticmethod
    def _require_role(sender: Sender, expected: str, role: str) -> None:
        if sender_address(sender) != expected:
            raise NotParticipant(f"only the channel's {role} ({expected}) can do this")
