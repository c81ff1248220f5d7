"""Fixtures: one in-process eth-tester chain per session, snapshot/revert around every test; the
store backends (SQLite, PostgreSQL) the store tests run on, each test once per backend."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.backends.pyevm.main import get_default_account_keys
from hypothesis import settings
from hypothesis.database import DirectoryBasedExampleDatabase
from web3 import EthereumTesterProvider, Web3

import compile_contracts
from compile_cache import cached_json
from helpers import DAY, ETH, HOUR, ZERO32, Key, sign_voucher, transact
from micropay.artifact import load_artifact
from micropay.packing import pack_voucher
from micropay.voucher import Voucher
from pgcluster import Cluster, StoreLocations, pg_bindir, throwaway_cluster

# Profiles: the default budget is what CI runs; `deep` is for long local runs. CI keeps no example
# database (a failing example is printed in full); locally it lives in .hypothesis/ (never committed).
settings.register_profile("ci", database=None)
settings.register_profile("deep", max_examples=2000, database=DirectoryBasedExampleDatabase(".hypothesis"))
settings.load_profile(os.environ.get("MICROPAY_HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default"))

# -- store backends ------------------------------------------------------------------------------
# A test that asks for `store_at` (or `store_locations`, or `backend`), directly or through a fixture
# (the API tests' `payee` and `make_payer`, say), runs once per selected backend: ids [sqlite] and
# [postgres]. `--backends` (env MICROPAY_TEST_BACKENDS) selects them; PostgreSQL runs on one
# throwaway cluster per session (tests/pgcluster.py), each store in a fresh schema.

BACKENDS = ("sqlite", "postgres")
_SELECTED = pytest.StashKey[list[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backends", default=os.environ.get("MICROPAY_TEST_BACKENDS") or ",".join(BACKENDS),
        help="comma-separated store backends the store tests run on: sqlite, postgres "
             "(default: env MICROPAY_TEST_BACKENDS, else both)")


def pytest_configure(config: pytest.Config) -> None:
    names = [name.strip() for name in str(config.getoption("--backends")).split(",") if name.strip()]
    unknown = [name for name in names if name not in BACKENDS]
    if unknown or not names:
        raise pytest.UsageError(f"--backends {config.getoption('--backends')!r}: "
                                f"{'unknown ' + ', '.join(unknown) if unknown else 'none given'} "
                                f"(choose from {', '.join(BACKENDS)}, comma-separated)")
    config.stash[_SELECTED] = list(dict.fromkeys(names))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        names = metafunc.config.stash[_SELECTED]
        metafunc.parametrize("backend", names, ids=names, indirect=True, scope="session")


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> str:
    """The store backend this test runs on: "sqlite" or "postgres" (see ``--backends``)."""
    return request.param


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """A throwaway PostgreSQL cluster for the whole session (stopped and removed at its end)."""
    missing = None
    try:
        pg_bindir()
    except RuntimeError as exc:
        missing = str(exc)
    if missing is not None:  # a failure, never a skip: a run that selects PostgreSQL must test it
        pytest.fail(f"the PostgreSQL tests need a server: {missing} (or run only SQLite's: --backends sqlite)",
                    pytrace=False)
    with throwaway_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def store_locations(backend: str, request: pytest.FixtureRequest) -> StoreLocations:
    """Store locations for fixtures of any scope: ``store_locations.make(folder, name)`` is
    ``folder/name.db`` on SQLite, a URL into a fresh schema on PostgreSQL; the same (folder, name)
    gives the same location."""
    if backend == "postgres":
        return StoreLocations(backend, request.getfixturevalue("pg_cluster").url)
    return StoreLocations(backend)


@pytest.fixture
def store_at(store_locations: StoreLocations, tmp_path: Path) -> Callable[[str], str]:
    """``store_at(name)``: where this test keeps the store ``name`` (a path on SQLite, a URL on
    PostgreSQL), the same for the same name within the test."""
    return lambda name: store_locations.make(tmp_path, name)


HELPER_SOURCES = sorted((Path(__file__).parent / "contracts").glob("*.sol"))
MINT = 10**30


def _compile_helpers() -> dict[str, dict[str, Any]]:
    output = compile_contracts.compile_files(HELPER_SOURCES)
    return {
        name: {"abi": data["abi"], "bytecode": "0x" + data["evm"]["bytecode"]["object"]}
        for unit in output["contracts"].values()
        for name, data in unit.items()
        if data["evm"]["bytecode"]["object"]
    }


@pytest.fixture(scope="session")
def helper_contracts(request: pytest.FixtureRequest) -> dict[str, dict[str, Any]]:
    """ABI + bytecode of tests/contracts/*.sol, compiled once and cached by source hash: in pytest's
    cache, or (with ``-p no:cacheprovider``) in a file of its own under the system temp directory."""
    digest = hashlib.sha256()
    for path in HELPER_SOURCES:
        digest.update(path.read_bytes())
    digest.update(repr(compile_contracts.SETTINGS).encode())
    cache = getattr(request.config, "cache", None)  # absent when the cache plugin is off
    if cache is not None:
        cache_key = f"micropay/helpers/{digest.hexdigest()}"
        cached = cache.get(cache_key, None)
        if cached is not None:
            return cached
        contracts = _compile_helpers()
        cache.set(cache_key, contracts)
        return contracts
    return cached_json("micropay-test-helpers", digest.hexdigest(), _compile_helpers)


@pytest.fixture(scope="session")
def tester() -> EthereumTester:
    return EthereumTester(PyEVMBackend())


@pytest.fixture(scope="session")
def w3(tester: EthereumTester) -> Web3:
    return Web3(EthereumTesterProvider(tester))


@pytest.fixture(scope="session")
def keys() -> list[Any]:
    return list(get_default_account_keys())


@pytest.fixture(scope="session")
def accounts(w3: Web3) -> list[str]:
    return list(w3.eth.accounts)


@pytest.fixture(scope="session")
def deployer(accounts: list[str]) -> str:
    return accounts[0]


@pytest.fixture(scope="session")
def payer(accounts: list[str]) -> str:
    return accounts[1]


@pytest.fixture(scope="session")
def payee(accounts: list[str]) -> str:
    return accounts[2]


@pytest.fixture(scope="session")
def relayer(accounts: list[str]) -> str:
    return accounts[3]


@pytest.fixture(scope="session")
def stranger(accounts: list[str]) -> str:
    return accounts[4]


@pytest.fixture(scope="session")
def key_of(accounts: list[str], keys: list[Any]) -> Callable[[str], bytes]:
    by_address = {address: key.to_bytes() for address, key in zip(accounts, keys, strict=False)}
    return lambda address: by_address[address]


def deploy(w3: Web3, abi: Any, bytecode: str, sender: str, *args: Any) -> Any:
    contract = w3.eth.contract(abi=abi, bytecode=bytecode)
    receipt = w3.eth.wait_for_transaction_receipt(contract.constructor(*args).transact({"from": sender}))
    return w3.eth.contract(address=receipt.contractAddress, abi=abi)


@pytest.fixture(scope="session")
def deploy_helper(w3: Web3, helper_contracts: dict, deployer: str) -> Callable[..., Any]:
    def _deploy(name: str, *args: Any) -> Any:
        return deploy(w3, helper_contracts[name]["abi"], helper_contracts[name]["bytecode"], deployer, *args)

    return _deploy


@pytest.fixture(scope="session")
def escrow(w3: Web3, deployer: str) -> Any:
    """The escrow from the artifact shipped in the package, exactly as users deploy it."""
    artifact = load_artifact()
    return deploy(w3, artifact["abi"], artifact["bytecode"], deployer)


@pytest.fixture(scope="session")
def other_escrow(w3: Web3, deployer: str) -> Any:
    artifact = load_artifact()
    return deploy(w3, artifact["abi"], artifact["bytecode"], deployer)


@pytest.fixture(scope="session")
def token(deploy_helper: Callable[..., Any], escrow: Any, accounts: list[str]) -> Any:
    """A 6-decimals ERC-20 with permit; every account holds plenty and approved the escrow."""
    erc20 = deploy_helper("TestToken")
    for account in accounts[:5]:
        transact(erc20.functions.mint(account, MINT), account)
        transact(erc20.functions.approve(escrow.address, 2**256 - 1), account)
    return erc20


@pytest.fixture(autouse=True)
def _isolated_chain(request: pytest.FixtureRequest) -> Iterator[None]:
    """Revert the session chain after each test that uses it. A test that never touches the chain
    (``tester`` is not among its fixtures, directly or through ``w3``, ``escrow`` and the like)
    does not start one."""
    if "tester" not in request.fixturenames:  # the transitive closure of the test's fixtures
        yield
        return
    tester: EthereumTester = request.getfixturevalue("tester")
    # Session fixtures (deployments) are set up before this runs, so they survive the revert.
    snapshot = tester.take_snapshot()
    yield
    tester.revert_to_snapshot(snapshot)


class Chain:
    def __init__(self, w3: Web3, tester: EthereumTester) -> None:
        self.w3, self.tester = w3, tester

    def now(self) -> int:
        """The time the next transaction will see. eth-tester stamps blocks with the wall clock,
        which runs ahead of the latest block (say, one restored from a snapshot)."""
        return self.w3.eth.get_block("pending").timestamp

    def next_tx_at(self, timestamp: int) -> None:
        """The next transaction executes in a block with exactly this timestamp."""
        self.tester.time_travel(timestamp)


@pytest.fixture
def chain(w3: Web3, tester: EthereumTester) -> Chain:
    return Chain(w3, tester)


class Channels:
    """Open channels and sign vouchers for them with the shared test accounts (or ``LocalAccount``
    signers), handing the escrow packed vouchers (micropay.packing)."""

    def __init__(self, w3: Web3, escrow: Any, chain: Chain, key_of: Callable[[str], bytes]) -> None:
        self.w3, self.escrow, self.chain, self.key_of = w3, escrow, chain, key_of
        self._salt = 0

    def open(
        self,
        payer: str,
        payee: str,
        deposit: int,
        *,
        token: str = ETH,
        salt: int | None = None,
        expiry: int | None = None,
        window: int = HOUR,
        signer: str = ETH,
        terms: bytes = ZERO32,
    ) -> tuple[Key, Any]:
        if salt is None:
            self._salt += 1
            salt = self._salt
        expiry = expiry if expiry is not None else self.chain.now() + 30 * DAY
        key = Key(payer, payee, token, salt, signer)
        if token == ETH:
            receipt = transact(self.escrow.functions.open(payee, signer, salt, expiry, window, terms), payer, deposit)
        else:
            receipt = transact(self.escrow.functions.openToken(payee, token, signer, salt, deposit, expiry, window,
                                                               terms), payer)
        return key, receipt

    def voucher(self, key: Key, amount: int, root: bytes = b"\x11" * 32, *, signer: Any = None,
                escrow: str | None = None, chain_id: int | None = None) -> bytes:
        """The packed voucher claim() and close() take (micropay.packing.pack_voucher)."""
        chain_id = chain_id if chain_id is not None else self.w3.eth.chain_id
        escrow = escrow or self.escrow.address
        signature = self.sign(key, amount, root, signer=signer, escrow=escrow, chain_id=chain_id)
        return pack_voucher(key.channel_key(), Voucher(chain_id, escrow, key.id(), amount, root, signature))

    def claim(self, key: Key, amount: int, sender: str | None = None, root: bytes = b"\x11" * 32) -> Any:
        call = self.escrow.functions.claim(key.payee, key.token, self.voucher(key, amount, root))
        return transact(call, sender or key.payee)

    def sign(self, key: Key, amount: int, root: bytes = b"\x11" * 32, *, signer: Any = None,
             escrow: str | None = None, chain_id: int | None = None) -> bytes:
        """A 65-byte signature by ``signer`` (a test account's address or a LocalAccount; default:
        the channel's voucher signer)."""
        signer = signer or key.voucher_signer
        return sign_voucher(
            signer.key if hasattr(signer, "key") else self.key_of(signer),
            chain_id=chain_id if chain_id is not None else self.w3.eth.chain_id,
            escrow=escrow or self.escrow.address,
            channel_id=key.id(),
            amount=amount,
            ledger_root=root,
        )

    def state(self, key: Key) -> Any:
        return self.escrow.functions.channel(key.id()).call()


@pytest.fixture
def channels(w3: Web3, escrow: Any, chain: Chain, key_of: Callable[[str], bytes]) -> Channels:
    return Channels(w3, escrow, chain, key_of)
