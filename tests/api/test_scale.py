"""What must not grow with history: building a ledger is one pass, `status` counts tasks without
reading ledgers, and channels that are final are never read from the chain again."""

from micropay import Ledger, TaskReceipt, VoucherStore, overview


def test_a_ledger_is_built_in_one_pass_not_by_copying_it_per_receipt(monkeypatch):
    def copy_per_receipt(self, receipt):
        raise AssertionError("Ledger.of appended one receipt at a time, copying the whole ledger each time")

    monkeypatch.setattr(Ledger, "append", copy_per_receipt)
    receipts = [TaskReceipt(f"t{i}", 1) for i in range(1_000)]
    ledger = Ledger.of(receipts)
    assert ledger.total == 1_000 and ledger.receipts == tuple(receipts)


def test_the_overview_counts_tasks_without_reading_any_ledger(lib_escrow, clients, freelancer, make_payer, payee,
                                                               monkeypatch):
    payer = make_payer(clients[0])
    channel = payer.open_channel(freelancer.address, 10**16)
    for n in range(5):
        payee.receive(payer.pay(channel.id, 1, task=f"t{n}"))

    def no_ledgers(self, *args, **kwargs):
        raise AssertionError("read a whole ledger to count its tasks")

    monkeypatch.setattr(VoucherStore, "ledger", no_ledgers)
    (view,) = overview(payee.store, [lib_escrow])
    assert (view.tasks, view.paid, view.unclaimed) == (5, 5, 5)


def test_unclaimed_never_reads_a_final_channel_again(lib_escrow, clients, freelancer, make_payer, payee,
                                                     monkeypatch):
    payer = make_payer(clients[0])
    done, live = (payer.open_channel(freelancer.address, 10**16) for _ in range(2))
    payee.receive(payer.pay(done.id, 3, task="finished"))
    payee.receive(payer.pay(live.id, 4, task="ongoing"))
    payee.close(done.id)
    read = []
    channels = type(lib_escrow).channels

    def counting(self, keys):
        read.extend(key.id for key in keys)
        return channels(self, keys)

    monkeypatch.setattr(type(lib_escrow), "channels", counting)
    assert [u.channel_id for u in payee.unclaimed()] == [live.id]
    assert read == [live.id]


def test_a_bundle_with_ten_thousand_receipts_imports_whole(clients, make_payer, freelancer, store_at):
    payer = make_payer(clients[1])
    channel = payer.open_channel(freelancer.address, 10**18)
    receipts = 10_000
    for n in range(receipts):
        payer.pay(channel.id, 1, task=f"t{n}")
    bundle = payer.store.export()
    fresh = VoucherStore(store_at("restored"))
    assert fresh.import_(bundle) == 1
    assert len(fresh.ledger(channel.id)) == receipts
