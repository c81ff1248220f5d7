"""MicropayEscrow.claimMany: many channels, one transfer; bad vouchers are skipped, not fatal."""

from escrow_kit import ROOT, pack, selector

from helpers import DAY, ETH, events, gas_cost, reverts, transact


def forged(channels, key, amount, signer):
    """A voucher of ``key`` signed by ``signer`` instead of the channel's signer (ERC-2098 form)."""
    return pack(key, amount, ROOT, channels.sign(key, amount, signer=signer))


def test_pays_every_channel_in_one_transfer(w3, escrow, channels, accounts, payee, relayer):
    payers = accounts[5:8]
    keys = [channels.open(p, payee, 10**18)[0] for p in payers for _ in range(2)]
    amounts = [10**15 * (i + 1) for i in range(len(keys))]
    before = w3.eth.get_balance(payee)

    batch = b"".join(channels.voucher(k, a) for k, a in zip(keys, amounts, strict=True))
    receipt = transact(escrow.functions.claimMany(payee, ETH, batch), relayer)

    assert w3.eth.get_balance(payee) - before == sum(amounts)
    assert [channels.state(k)[1] for k in keys] == amounts
    claimed = events(escrow, receipt, "Claimed")
    assert [(e.args.channelId, e.args.claimed, e.args.ledgerRoot) for e in claimed] == [
        (k.id(), a, ROOT) for k, a in zip(keys, amounts, strict=True)]
    assert events(escrow, receipt, "ClaimSkipped") == []


def test_returns_the_total_paid(escrow, channels, payer, payee, relayer):
    keys = [channels.open(payer, payee, 1000)[0] for _ in range(3)]
    batch = b"".join(channels.voucher(k, 100 * (i + 1)) for i, k in enumerate(keys))
    assert escrow.functions.claimMany(payee, ETH, batch).call({"from": relayer}) == 600


def test_erc20_batch_pays_once(escrow, token, channels, payer, payee):
    keys = [channels.open(payer, payee, 1_000_000, token=token.address)[0] for _ in range(3)]
    before = token.functions.balanceOf(payee).call()
    batch = b"".join(channels.voucher(k, 400_000) for k in keys)
    receipt = transact(escrow.functions.claimMany(payee, token.address, batch), payee)
    assert token.functions.balanceOf(payee).call() - before == 1_200_000
    transfers = [e for e in events(token, receipt, "Transfer") if e.args["from"] == escrow.address]
    assert len(transfers) == 1


def test_bad_voucher_is_skipped_with_its_reason(w3, escrow, channels, chain, payer, payee, stranger, relayer):
    good, _ = channels.open(payer, payee, 1000)
    bad_signature, _ = channels.open(payer, payee, 1000)
    expiring, _ = channels.open(payer, payee, 1000, expiry=chain.now() + DAY)
    spent, _ = channels.open(payer, payee, 1000)
    closed, _ = channels.open(payer, payee, 1000)
    channels.claim(spent, 300, relayer)
    transact(escrow.functions.close(ETH, channels.voucher(closed, 0)), payee)
    chain.next_tx_at(chain.now() + DAY + 10)
    before = w3.eth.get_balance(payee)

    receipt = transact(escrow.functions.claimMany(payee, ETH, b"".join([
        channels.voucher(good, 100),
        forged(channels, bad_signature, 100, stranger),
        channels.voucher(expiring, 100),
        channels.voucher(spent, 300),
        channels.voucher(closed, 100),
    ])), relayer)

    assert w3.eth.get_balance(payee) - before == 100
    assert [channels.state(k)[1] for k in (good, bad_signature, expiring, spent, closed)] == [100, 0, 0, 300, 0]
    skipped = {e.args.channelId: (e.args.payer, e.args.payee, e.args.reason)
               for e in events(escrow, receipt, "ClaimSkipped")}
    assert skipped == {
        bad_signature.id(): (payer, payee, selector("InvalidSignature()")),
        expiring.id(): (payer, payee, selector("ChannelExpired(bytes32,uint32)")),
        spent.id(): (payer, payee, selector("NothingToClaim(bytes32,uint256)")),
        closed.id(): (payer, payee, selector("ChannelFinal(bytes32)")),
    }
    assert [e.args.channelId for e in events(escrow, receipt, "Claimed")] == [good.id()]


def test_voucher_for_another_payee_is_skipped(w3, escrow, channels, payer, payee, stranger):
    # A channel to `stranger` submitted in `payee`'s batch hashes to an unknown id: nothing moves.
    key, _ = channels.open(payer, stranger, 1000)
    receipt = transact(escrow.functions.claimMany(payee, ETH, channels.voucher(key, 500)), payee)
    (skip,) = events(escrow, receipt, "ClaimSkipped")
    assert skip.args.reason == selector("ChannelNotFound(bytes32)")
    assert skip.args.channelId == key.__class__(payer, payee, ETH, key.salt).id()
    assert channels.state(key)[1] == 0


def test_same_channel_twice_in_a_batch_pays_once(w3, escrow, channels, payer, payee, relayer):
    key, _ = channels.open(payer, payee, 1000)
    before = w3.eth.get_balance(payee)
    entry = channels.voucher(key, 700)
    receipt = transact(escrow.functions.claimMany(payee, ETH, entry + entry), relayer)
    assert w3.eth.get_balance(payee) - before == 700
    (skip,) = events(escrow, receipt, "ClaimSkipped")
    assert skip.args.reason == selector("NothingToClaim(bytes32,uint256)")


def test_empty_batch_changes_nothing(w3, escrow, payee):
    before = w3.eth.get_balance(payee)
    receipt = transact(escrow.functions.claimMany(payee, ETH, b""), payee)
    assert w3.eth.get_balance(payee) == before - gas_cost(receipt)
    assert receipt.logs == []


def test_malformed_entry_reverts_the_whole_batch(w3, escrow, channels, payer, payee):
    key, _ = channels.open(payer, payee, 1000)
    good = channels.voucher(key, 100)
    with reverts(escrow, "InvalidEncoding"):
        transact(escrow.functions.claimMany(payee, ETH, good + good[:-1]), payee)
    assert channels.state(key)[1] == 0
