"""The chain itself, as the escrow proxy sees it: blocks, balances, fees, receipts and tokens.

:class:`Chain` is the part of the one door to the chain (:class:`micropay.escrow.Escrow`
extends it) that is not about the escrow contract: typed reads of the node, and the transaction
pipeline's receipt handling. Nothing outside these proxies talks to web3.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

from eth_typing import BlockNumber
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import BadFunctionCallOutput, ContractLogicError
from web3.providers.base import JSONBaseProvider

from micropay._utils.crypto import recover_address
from micropay._utils.reverts import ErrorDecoder
from micropay.channel import ETH, checked_address
from micropay.errors import MicropayValueError, TransactionError
from micropay.token import Token
from micropay.transactions import Receipt, TransactionPipeline, TxOptions, as_checksum

#: Channel reads per JSON-RPC batch: providers cap batch sizes (commonly at 1,000 calls).
BATCH_SIZE = 500
#: EIP-1271: what ``isValidSignature(bytes32, bytes)`` returns for a valid signature (its selector).
ERC1271_MAGIC = bytes.fromhex("1626ba7e")
ERC1271_ABI: list[dict[str, Any]] = [{
    "type": "function", "name": "isValidSignature", "stateMutability": "view",
    "inputs": [{"name": "hash", "type": "bytes32"}, {"name": "signature", "type": "bytes"}],
    "outputs": [{"name": "magicValue", "type": "bytes4"}],
}]

#: Decimals beyond this are not a token people pay with (and would make amounts unreadable).
MAX_DECIMALS = 36


class Chain:
    """A node, read through typed methods, and the pipeline that sends to it."""

    def __init__(self, pipeline: TransactionPipeline, *, chain_id: int | None = None) -> None:
        """``chain_id``, if given, is trusted instead of asked from the node (it is known offline)."""
        self.pipeline = pipeline
        self.w3: Web3 = pipeline.w3
        if chain_id is not None:
            self.__dict__["chain_id"] = chain_id

    @classmethod
    def connect(cls, w3: Web3, options: TxOptions | None = None) -> Chain:
        """The node ``w3`` talks to, with a pipeline that knows no contract's errors."""
        return cls(TransactionPipeline(w3, ErrorDecoder([]), options=options))

    @property
    def options(self) -> TxOptions:
        """How transactions to this chain are sent (its pipeline's fee cap, confirmations, timeout)."""
        return self.pipeline.options

    @cached_property
    def chain_id(self) -> int:
        """The node's chain id (asked once, unless it was given when this was built)."""
        return int(self.w3.eth.chain_id)

    def now(self) -> int:
        """The latest block's timestamp."""
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def block_number(self) -> int:
        """The latest block's number."""
        return int(self.w3.eth.block_number)

    def block_time(self, number: int) -> int:
        """The timestamp of block ``number``."""
        return int(self.w3.eth.get_block(BlockNumber(number))["timestamp"])

    def latest_receipt(self) -> Receipt:
        """The receipt of the newest transaction in the latest block (a dev chain mines one
        transaction per block). Raises :class:`TransactionError` if that block has none."""
        transactions = self.w3.eth.get_block("latest")["transactions"]
        last = transactions[-1] if transactions else None
        receipt = self.find_receipt(bytes(last)) if isinstance(last, bytes) else None
        if receipt is None:
            raise TransactionError("the latest block holds no transaction")
        return receipt

    def accounts(self) -> list[str]:
        """The node-managed accounts (a dev node's funded ones; none on a public node)."""
        return [str(account) for account in self.w3.eth.accounts]

    def balance(self, account: str) -> int:
        """ETH held by ``account``, in wei."""
        return int(self.w3.eth.get_balance(as_checksum(checked_address(account, "account"))))

    def has_code(self, address: str) -> bool:
        """Whether ``address`` holds contract code (a contract wallet, a token, an EIP-7702
        account) now. Raises :class:`MicropayValueError` if it is not an address."""
        return bool(self.w3.eth.get_code(as_checksum(checked_address(address, "address"))))

    def block_gas_limit(self) -> int:
        """The latest block's gas limit: no one transaction can use more."""
        return int(self.w3.eth.get_block("latest")["gasLimit"])

    def gas_price(self) -> int:
        """The node's gas price now, in wei per gas."""
        return int(self.w3.eth.gas_price)

    def token(self, address: str) -> Token:
        """A proxy to the ERC-20 at ``address``, sending through this chain's options. Raises
        :class:`MicropayValueError` if there is no contract at that address on this chain."""
        token = checked_address(address, "token")
        if not self.w3.eth.get_code(as_checksum(token)):
            raise MicropayValueError(f"there is no contract at {token} on chain {self.chain_id}: check the token "
                                     "address, and that the node is on the right network")
        return Token(self.w3, token, self.options)

    def token_units(self, token: str) -> tuple[int, str]:
        """(decimals, symbol) of a channel token: (18, "ETH") for ETH, else asked of the token.

        Raises :class:`MicropayValueError` if there is no contract there, or it does not answer
        ``decimals()`` and ``symbol()`` as an ERC-20 does."""
        if token == ETH:
            return 18, "ETH"
        erc20 = self.token(token)
        try:
            decimals, symbol = erc20.decimals, erc20.symbol
        except Exception:  # noqa: BLE001 - web3 raises several kinds for a call that does not decode
            raise MicropayValueError(f"the contract at {erc20.address} is not an ERC-20 token (it does not answer "
                                     "decimals() and symbol())") from None
        if not 0 <= decimals <= MAX_DECIMALS or not symbol.strip():
            raise MicropayValueError(f"the token at {erc20.address} reports {decimals} decimals and symbol "
                                     f"{symbol!r:.20}: not a token micropay can show amounts of")
        return decimals, symbol

    # -- receipts ----------------------------------------------------------------------------

    def find_receipt(self, tx_hash: bytes) -> Receipt | None:
        """The receipt if the transaction is mined now, else None: see :meth:`TransactionPipeline.find_receipt`."""
        return self.pipeline.find_receipt(tx_hash)

    def wait(self, tx_hash: bytes, *, require_success: bool = True) -> Receipt:
        """The receipt once the transaction is confirmed: see :meth:`TransactionPipeline.wait`. Raises
        :class:`TransactionPending`, or :class:`TransactionError` if (with ``require_success``) it failed."""
        return self.pipeline.wait(tx_hash, require_success=require_success)

    def rebroadcast(self, raw: bytes) -> None:
        """Hand a transaction signed earlier to the node again: see :meth:`TransactionPipeline.rebroadcast`."""
        self.pipeline.rebroadcast(raw)

    def is_signed_by(self, signer: str, digest: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is ``signer``'s over ``digest``, as the escrow decides it: a 65-byte
        ECDSA signature of the signer's key, or else what the signer's EIP-1271 ``isValidSignature``
        accepts (a chain call, made only for a signer with code; a wallet that reverts says no).
        Raises what the node raises when it cannot be asked (a lost connection is not a no)."""
        if len(signature) == 65 and recover_address(digest, signature) == bytes.fromhex(signer[2:]):
            return True
        if not self.w3.eth.get_code(as_checksum(signer)):
            return False
        checker = self.w3.eth.contract(address=as_checksum(signer), abi=ERC1271_ABI)
        try:
            answer = bytes(checker.functions.isValidSignature(digest, signature).call())
        except (ContractLogicError, ValueError, BadFunctionCallOutput):
            return False  # a wallet that reverts (a Safe does, for a bad signature) says no
        except Exception as exc:  # the in-process eth-tester raises its own TransactionFailed for a revert
            if str(exc).startswith("execution reverted"):
                return False
            raise
        return answer == ERC1271_MAGIC

    def call_many(self, calls: Sequence[ContractFunction], block: int) -> list[Any]:
        """Each call's result at ``block``: in-process, one by one; over JSON-RPC, one batch per
        :data:`BATCH_SIZE` calls."""
        if not isinstance(self.w3.provider, JSONBaseProvider) or len(calls) <= 1:
            return [call.call(block_identifier=BlockNumber(block)) for call in calls]  # in-process: no round trips
        results: list[Any] = []
        for start in range(0, len(calls), BATCH_SIZE):
            with self.w3.batch_requests() as batch:
                for call in calls[start : start + BATCH_SIZE]:
                    batch.add(call.call(block_identifier=BlockNumber(block)))
                results += batch.execute()
        return results
