"""Channel tips: what the receive path judges a payment against, kept in memory between commits.

A tip is a channel's row, its best voucher and the ledger entry that voucher ends on. Reading it
from SQLite on every receive costs two statements; this cache saves them. A PostgreSQL store
cannot tell whether another process committed (its ``data_version`` is None), so there a tip is
read again every time, under the channel's row lock inside a transaction; only what a transaction
declares is reused, within that transaction. A cached tip is valid
while nothing else was committed to the file: ``PRAGMA data_version`` counts commits by other
connections (another process, a watcher), and the cache counts this connection's own. A
transaction that wrote only to one channel declares that channel's new tip, so its own commit
updates the cache instead of dropping it.
"""

from __future__ import annotations

from collections.abc import Callable

from micropay.records import ChannelTip


class TipCache:
    """The tips of one store connection. Every method is called under the store's lock."""

    def __init__(self) -> None:
        self._commits = 0
        self._tips: dict[bytes, ChannelTip] = {}
        self._version: tuple[int, int] | None = None
        self._pending: dict[bytes, ChannelTip] = {}

    def peek(self, uid: bytes) -> ChannelTip | None:
        """The cached tip, without asking whether it is current."""
        return self._tips.get(uid)

    def get(self, uid: bytes, data_version: int | None, read: Callable[[], ChannelTip | None]) -> ChannelTip | None:
        """The tip of ``uid``: cached while the file is as it was (``data_version`` is SQLite's
        count of other connections' commits; None: unknown, never cached), else ``read()``."""
        pending = self._pending.get(uid)
        if pending is not None:  # declared earlier in this transaction (a group commit's earlier payment)
            return pending
        if data_version is None:  # never reused, but kept for peek()
            tip = read()
            if tip is not None:
                self._tips[uid] = tip
            return tip
        version = (data_version, self._commits)
        if version != self._version:
            self._tips.clear()
            self._version = version
        tip = self._tips.get(uid)
        if tip is None:
            tip = read()
            if tip is not None:
                self._tips[uid] = tip
        return tip

    def begin(self) -> None:
        """A write transaction starts: nothing is declared yet."""
        self._pending.clear()

    def declare(self, uid: bytes, tip: ChannelTip) -> None:
        """The transaction under way wrote only to ``uid``, whose tip will be ``tip`` once committed."""
        self._pending[uid] = tip

    def pending(self) -> dict[bytes, ChannelTip]:
        """What the transaction under way has declared so far (to restore if a savepoint rolls back)."""
        return dict(self._pending)

    def restore(self, pending: dict[bytes, ChannelTip]) -> None:
        """A savepoint rolled back: its declarations are void."""
        self._pending = dict(pending)

    def committed(self) -> None:
        """This connection committed a change."""
        self._commits += 1
        if self._pending and (self._version is None or self._version[1] == self._commits - 1):
            # Only the declared channels changed: the other cached tips stay valid (with no version,
            # nothing is reused but peek() sees the latest).
            if self._version is not None:
                self._version = (self._version[0], self._commits)
            self._tips.update(self._pending)
        self._pending.clear()

    def discard(self, uid: bytes) -> None:
        """The transaction under way removed ``uid``'s channel: nothing cached of it holds."""
        self._tips.pop(uid, None)
        self._pending.pop(uid, None)

    def forget(self) -> None:
        """A transaction failed: whatever was read inside it may have seen its writes."""
        self._tips.clear()
        self._version = None
        self._pending.clear()
