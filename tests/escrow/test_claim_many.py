"""MicropayEscrow.claimMany: many channels, one transfer; bad vouchers are skipped, not fatal."""

from eth_utils import keccak

from helpers import DAY, ETH, events, gas_cost, transact


def selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def batch_entry(channels, key, amount, root=b"\x11" * 32, **sign_kwargs):
    return (key.payer, key.salt, amount, root, channels.sign(key, amount, root, **sign_kwargs))


def test_pays_every_channel_in_one_transfer(w3, escrow, channels, accounts, payee, relayer):
    payers = accounts[5:8]
    keys = [channels.open(p, payee, 10**18)[0] for p in payers for _ in range(2)]
    amounts = [10**15 * (i + 1) for i in range(len(keys))]
    before = w3.eth.get_balance(payee)

    receipt = transact(escrow.functions.claimMany(
        payee, ETH, [batch_entry(channels, k, a) for k, a in zip(keys, amounts, strict=False)]), relayer)

    assert w3.eth.get_balance(payee) - before == sum(amounts)
    assert [channels.state(k)[1] for k in keys] == amounts
    claimed = events(escrow, receipt, "Claimed")
    assert [(e.args.channelId, e.args.payer, e.args.claimed) for e in claimed] == [
        (k.id(), k.payer, a) for k, a in zip(keys, amounts, strict=False)]
    assert events(escrow, receipt, "ClaimSkipped") == []


def test_erc20_batch_pays_once(escrow, token, channels, payer, payee, relayer):
    keys = [channels.open(payer, payee, 1_000_000, token=token.address)[0] for _ in range(3)]
    before = token.functions.balanceOf(payee).call()
    receipt = transact(escrow.functions.claimMany(
        payee, token.address, [batch_entry(channels, k, 400_000) for k in keys]), payee)
    assert token.functions.balanceOf(payee).call() - before == 1_200_000
    transfers = [e for e in events(token, receipt, "Transfer") if e.args["from"] == escrow.address]
    assert len(transfers) == 1


def test_bad_voucher_is_skipped_with_its_reason(w3, escrow, channels, chain, payer, payee, stranger, relayer):
    good, _ = channels.open(payer, payee, 1000)
    forged, _ = channels.open(payer, payee, 1000)
    expiring, _ = channels.open(payer, payee, 1000, expiry=chain.now() + DAY)
    spent, _ = channels.open(payer, payee, 1000)
    channels.claim(spent, 300, relayer)
    chain.next_tx_at(chain.now() + DAY + 10)
    before = w3.eth.get_balance(payee)

    receipt = transact(escrow.functions.claimMany(payee, ETH, [
        batch_entry(channels, good, 100),
        batch_entry(channels, forged, 100, signer=stranger),
        batch_entry(channels, expiring, 100),
        batch_entry(channels, spent, 300),
    ]), relayer)

    assert w3.eth.get_balance(payee) - before == 100
    assert [channels.state(k)[1] for k in (good, forged, expiring, spent)] == [100, 0, 0, 300]
    skipped = {e.args.channelId: e.args.reason for e in events(escrow, receipt, "ClaimSkipped")}
    assert skipped == {
        forged.id(): selector("InvalidSignature()"),
        expiring.id(): selector("ChannelExpired(bytes32,uint32)"),
        spent.id(): selector("NothingToClaim(bytes32,uint256)"),
    }


def test_voucher_for_another_payee_is_skipped(w3, escrow, channels, payer, payee, stranger):
    # A channel to `stranger` submitted in `payee`'s batch hashes to an unknown id: nothing moves.
    key, _ = channels.open(payer, stranger, 1000)
    entry = batch_entry(channels, key, 500)
    receipt = transact(escrow.functions.claimMany(payee, ETH, [entry]), payee)
    (skip,) = events(escrow, receipt, "ClaimSkipped")
    assert skip.args.reason == selector("ChannelNotFound(bytes32)")
    assert channels.state(key)[1] == 0


def test_same_channel_twice_in_a_batch_pays_once(w3, escrow, channels, payer, payee, relayer):
    key, _ = channels.open(payer, payee, 1000)
    before = w3.eth.get_balance(payee)
    entry = batch_entry(channels, key, 700)
    transact(escrow.functions.claimMany(payee, ETH, [entry, entry]), relayer)
    assert w3.eth.get_balance(payee) - before == 700


def test_empty_batch_changes_nothing(w3, escrow, payee):
    before = w3.eth.get_balance(payee)
    receipt = transact(escrow.functions.claimMany(payee, ETH, []), payee)
    assert w3.eth.get_balance(payee) == before - gas_cost(receipt)
    assert receipt.logs == []
