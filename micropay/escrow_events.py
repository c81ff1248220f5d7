"""The escrow's event history: who opened which channel with which terms, what was claimed when.

Part of the escrow proxy (:class:`micropay.escrow.Escrow` is an :class:`EscrowEvents`): the
only reader of the escrow's logs. Keys and terms never change once a channel is opened, so they
are cached per proxy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from web3.contract import Contract
from web3.logs import DISCARD

from micropay.chain import Chain
from micropay.channel import ChannelKey
from micropay.errors import UnknownChannel
from micropay.transactions import Receipt, TransactionPipeline

#: Blocks per event query: providers cap the range of eth_getLogs.
LOG_RANGE = 10_000

@dataclass(frozen=True)
class Claimed:
    """One channel's ``Claimed`` event: its new claimed total."""

    channel_id: bytes
    claimed: int


def _key_of(args: Any) -> ChannelKey:
    """The key of a channel from its ChannelOpened event's arguments."""
    return ChannelKey(args["payer"], args["payee"], args["token"], args["salt"], args["signer"])


@dataclass(frozen=True)
class ClaimEvent:
    """A channel's claimed total moving on chain: a claim (``Claimed``) or a close (``Closed``),
    with its transaction and block."""

    channel_id: bytes
    claimed: int
    tx_hash: bytes
    block: int
    timestamp: int


class EscrowEvents(Chain):
    """The escrow's logs. Subclassed by :class:`~micropay.escrow.Escrow`, which sets the contract."""

    address: str
    contract: Contract
    from_block: int

    def __init__(self, pipeline: TransactionPipeline, *, chain_id: int | None = None) -> None:
        super().__init__(pipeline, chain_id=chain_id)
        self._opened_cache: dict[bytes, tuple[ChannelKey, bytes]] = {}

    def remember_opened(self, key: ChannelKey, terms: bytes) -> ChannelKey:
        """Cache what a channel's ChannelOpened event says (the key and terms never change)."""
        self._opened_cache[key.id] = (key, terms)
        return key

    def _remember(self, args: Any) -> ChannelKey:
        return self.remember_opened(_key_of(args), bytes(args["terms"]))

    def key(self, channel_id: bytes) -> ChannelKey:
        """The key of a channel, from its ChannelOpened event (cached: keys never change).

        Raises :class:`UnknownChannel` if no such channel was opened on this escrow."""
        return self._opened(channel_id)[0]

    def terms(self, channel_id: bytes) -> bytes:
        """The 32-byte terms a channel was opened with (zero for none), from its ChannelOpened event.

        Raises :class:`UnknownChannel` if no such channel was opened on this escrow."""
        return self._opened(channel_id)[1]

    def _opened(self, channel_id: bytes) -> tuple[ChannelKey, bytes]:
        cached = self._opened_cache.get(channel_id)
        if cached is None:
            logs = self.contract.events.ChannelOpened.get_logs(
                argument_filters={"channelId": channel_id}, from_block=self.from_block)
            if not logs:
                raise UnknownChannel(f"no channel 0x{channel_id.hex()} on escrow {self.address}")
            self._remember(logs[0]["args"])
            cached = self._opened_cache[channel_id]
        return cached

    def opened(self, *, payer: str | None = None, payee: str | None = None) -> list[ChannelKey]:
        """The keys of every channel opened on this escrow by ``payer`` or to ``payee`` (from the
        ChannelOpened events since deployment, read in ranges of :data:`LOG_RANGE` blocks)."""
        filters = {name: value for name, value in (("payer", payer), ("payee", payee)) if value is not None}
        head, keys = self.block_number(), []
        for start in range(self.from_block, head + 1, LOG_RANGE):
            logs = self.contract.events.ChannelOpened.get_logs(
                argument_filters=filters, from_block=start, to_block=min(head, start + LOG_RANGE - 1))
            for log in logs:
                keys.append(self._remember(log["args"]))
        return keys

    def closes_requested(self, payee: str, from_block: int, to_block: int) -> set[bytes]:
        """Ids of the channels to ``payee`` whose payer called requestClose in these blocks."""
        logs = self.contract.events.CloseRequested.get_logs(
            argument_filters={"payee": payee}, from_block=from_block, to_block=to_block)
        return {bytes(log["args"]["channelId"]) for log in logs}

    def claims(self, channel_id: bytes) -> list[ClaimEvent]:
        """Every move of a channel's claimed total on chain (its ``Claimed`` and ``Closed`` events),
        oldest first, each with its transaction, block and block time."""
        head, found = self.block_number(), []
        for start in range(self.from_block, head + 1, LOG_RANGE):
            end = min(head, start + LOG_RANGE - 1)
            for event in (self.contract.events.Claimed, self.contract.events.Closed):
                for log in event.get_logs(argument_filters={"channelId": channel_id}, from_block=start, to_block=end):
                    found.append((int(log["blockNumber"]), int(log["logIndex"]), int(log["args"]["claimed"]),
                                  bytes(log["transactionHash"])))
        times: dict[int, int] = {}
        for block, *_ in found:
            if block not in times:
                times[block] = int(self.w3.eth.get_block(block)["timestamp"])
        return [ClaimEvent(channel_id, claimed, tx_hash, block, times[block])
                for block, _, claimed, tx_hash in sorted(found)]

    # -- what a receipt says -------------------------------------------------------------------

    def claimed_in(self, receipt: Receipt) -> list[Claimed]:
        """The ``Claimed`` events of a mined transaction."""
        events = self.contract.events.Claimed().process_receipt(receipt.web3_receipt, errors=DISCARD)
        return [Claimed(bytes(e["args"]["channelId"]), int(e["args"]["claimed"])) for e in events]

    def refund_in(self, receipt: Receipt) -> int:
        """The refund of a ``reclaim`` transaction (0 if it has no ``Reclaimed`` event)."""
        events = self.contract.events.Reclaimed().process_receipt(receipt.web3_receipt, errors=DISCARD)
        return sum(int(e["args"]["refund"]) for e in events)

