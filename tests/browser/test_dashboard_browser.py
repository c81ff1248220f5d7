"""The dashboard in a real browser, for a freelancer and for a client: every figure on the page
equals the store's and the chain's to the wei (parsed from the DOM), and a payment that arrives
while the page is open appears without a reload. Screenshots go to the folder the run prints."""

from __future__ import annotations

import pytest
from eth_account import Account
from selenium.webdriver.support.ui import WebDriverWait

from helpers import agree_and_open
from micropay import Escrow, Payee, Payer
from micropay.dashboard import Dashboard
from micropay.overview import overview
from threadserver import ThreadServer

MILLI = 10**15


@pytest.fixture(scope="module")
def chain(w3, accounts):
    def fund(account):
        w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(
            {"from": accounts[0], "to": account.address, "value": 10**20}))
        return account

    deployer = fund(Account.from_key(b"\x51" * 32))
    return Escrow.deploy(w3, deployer), fund


def parties(chain, tmp_path, freelancer_seed, client_seed):
    """A funded freelancer (its key, and a Payee with its own store) and a funded client's Payer."""
    escrow, fund = chain
    freelancer = fund(Account.from_key(bytes([freelancer_seed]) * 32))
    return (freelancer, Payee(escrow, freelancer, tmp_path / "freelancer.db"),
            Payer(escrow, fund(Account.from_key(bytes([client_seed]) * 32)), tmp_path / "client.db"))


class Served(ThreadServer):
    """A Dashboard (or another ASGI app) served in a thread of this process; ``url`` ends in "/"."""

    def __init__(self, dashboard: Dashboard | object) -> None:
        super().__init__(dashboard.app if isinstance(dashboard, Dashboard) else dashboard)
        self.url += "/"


def wei(browser, selector):
    return [int(e.get_attribute("data-wei")) for e in browser.find_elements("css selector", selector)]


def test_the_freelancers_page_shows_the_stores_figures_and_a_new_payment_without_reload(
        browser, chain, tmp_path, screenshots):
    escrow, fund = chain
    freelancer = fund(Account.from_key(b"\x52" * 32))
    payee = Payee(escrow, freelancer, tmp_path / "freelancer.db")
    payers = [Payer(escrow, fund(Account.from_key(bytes([0x53 + i]) * 32)), tmp_path / f"client{i}.db")
              for i in range(2)]
    channels = [p.open_channel(freelancer.address, 10**17) for p in payers]
    for payer, channel, prices in zip(payers, channels, ((5, 3), (7,)), strict=True):
        for n, price in enumerate(prices):
            payee.receive(payer.pay(channel.id, price * MILLI, task=f"task {n}"))
    served = Served(Dashboard(payee.store, payee.address, [escrow], refresh=0.5,
                              explorers={escrow.chain_id: "https://explorer.example/tx/{tx}"}))
    try:
        browser.get(served.url)
        rows = browser.find_elements("css selector", "#payee-channels tbody tr")
        views = {v.record.id: v for v in overview(payee.store, [escrow])}
        for row in rows:
            view = views[bytes.fromhex(row.get_attribute("data-channel")[2:])]
            shown = {name: int(row.find_element("css selector", f".{name} .amount").get_attribute("data-wei"))
                     for name in ("paid", "unclaimed")}
            assert shown == {"paid": view.paid, "unclaimed": view.unclaimed}
        assert sorted(wei(browser, "#payee-channels .paid .amount")) == [7 * MILLI, 8 * MILLI]
        dots = browser.find_elements("css selector", "svg.chart circle")
        assert sorted(int(d.get_attribute("data-amount")) for d in dots) == [5 * MILLI, 7 * MILLI, 8 * MILLI]
        browser.save_screenshot(str(screenshots / "freelancer-overview.png"))

        browser.execute_script("window.stillTheSamePage = true")
        payee.receive(payers[1].pay(channels[1].id, 2 * MILLI, task="late"))  # arrives while the page is open
        WebDriverWait(browser, 15).until(
            lambda b: sorted(wei(b, "#payee-channels .paid .amount")) == [8 * MILLI, 9 * MILLI])
        assert browser.execute_script("return window.stillTheSamePage === true")  # no reload
        assert sorted(wei(browser, ".feed .payment .amount")) == [2 * MILLI, 3 * MILLI, 5 * MILLI, 7 * MILLI]
        browser.save_screenshot(str(screenshots / "freelancer-overview-after-payment.png"))

        settlement = payee.settle()  # the settlement history and the unclaimed figures follow
        WebDriverWait(browser, 15).until(lambda b: wei(b, "#settlements .gross .amount") == [settlement.gross])
        # Linked to the explorer once mined (a settlement is recorded before it is sent).
        (link,) = WebDriverWait(browser, 15).until(lambda b: b.find_elements("css selector", "#settlements a"))
        assert link.get_attribute("href") == f"https://explorer.example/tx/0x{settlement.tx_hash.hex()}"
        # The settlement is recorded before it is sent: the page shows it, then the claimed chain state.
        WebDriverWait(browser, 15).until(lambda b: wei(b, "#payee-channels .unclaimed .amount") == [0, 0])
        browser.save_screenshot(str(screenshots / "freelancer-overview-settled.png"))
    finally:
        served.stop()


def test_the_clients_page_shows_spending_against_the_deposit_and_what_is_not_delivered(
        browser, chain, tmp_path, screenshots):
    escrow, fund = chain
    freelancer = fund(Account.from_key(b"\x5a" * 32))
    payer = Payer(escrow, fund(Account.from_key(b"\x5b" * 32)), tmp_path / "client.db")
    channel = payer.open_channel(freelancer.address, 10**17)
    payer.set_inbox(channel.id, "http://127.0.0.1:9")  # nothing listens: the payments stay queued
    for n in range(3):
        payer.pay(channel.id, 4 * MILLI, task=f"t{n}")
    served = Served(Dashboard(payer.store, payer.address, [escrow], refresh=0))
    try:
        browser.get(served.url)
        (row,) = browser.find_elements("css selector", "#payer-channels tbody tr")
        assert int(row.find_element("css selector", ".paid .amount").get_attribute("data-wei")) == 12 * MILLI
        assert int(row.find_element("css selector", ".deposit .amount").get_attribute("data-wei")) == 10**17
        assert int(row.find_element("css selector", ".acknowledged .amount").get_attribute("data-wei")) == 0
        assert row.find_element("css selector", ".undelivered").get_attribute("data-count") == "3"
        assert not browser.find_elements("css selector", "#payee-channels")  # no freelancer side here
        browser.save_screenshot(str(screenshots / "client-overview.png"))
    finally:
        served.stop()


def test_a_channel_page_lists_its_plans_tasks_and_its_ledger_and_links_its_statement(
        browser, chain, tmp_path, screenshots):
    from micropay.plan import PlanTask

    escrow, _ = chain
    freelancer, payee, payer = parties(chain, tmp_path, 0x5c, 0x5d)
    _, _, channel = agree_and_open(payer, payee, freelancer, "Brand refresh", (
        PlanTask("logo", "Logo draft", 5 * MILLI), PlanTask("cards", "Cards", 3 * MILLI)))
    payee.receive(payer.pay_task(channel.id, "logo", note="first draft"))
    served = Served(Dashboard(payee.store, payee.address, [escrow], refresh=0))
    try:
        browser.get(served.url)
        browser.find_element("css selector", f"#payee-channels a[href='/channels/0x{channel.id.hex()}']").click()
        rows = browser.find_elements("css selector", "#tasks tbody tr")
        tasks = {row.get_attribute("data-task"): row for row in rows}
        assert set(tasks) == {"logo", "cards"}
        assert int(tasks["logo"].find_element("css selector", ".paid .amount").get_attribute("data-wei")) == 5 * MILLI
        assert tasks["logo"].find_element("css selector", ".state").text.startswith("paid")
        assert int(tasks["cards"].find_element("css selector", ".price .amount").get_attribute("data-wei")) == 3 * MILLI
        assert wei(browser, "#ledger .total .amount") == [e.total for e in payee.ledger(channel.id)] == [5 * MILLI]
        browser.save_screenshot(str(screenshots / "freelancer-channel.png"))
        browser.find_element("link text", "statement").click()
        assert "Logo draft" in browser.page_source or "logo" in browser.page_source
        browser.save_screenshot(str(screenshots / "freelancer-statement.png"))
        browser.find_element("link text", "Back to the channel").click()
        WebDriverWait(browser, 10).until(lambda b: b.find_elements("id", "ledger"))
        browser.get(served.url + "channels/0x" + "00" * 32)
        WebDriverWait(browser, 10).until(lambda b: "No such channel here" in b.page_source)
    finally:
        served.stop()


def test_settle_now_shows_its_dry_run_and_without_the_csrf_token_is_refused(browser, chain, tmp_path, screenshots):
    import httpx

    escrow, _ = chain
    freelancer, payee, payer = parties(chain, tmp_path, 0x5e, 0x5f)
    channel = payer.open_channel(freelancer.address, 10**17)
    payee.receive(payer.pay(channel.id, 6 * MILLI, task="t"))
    served = Served(Dashboard(payee.store, payee.address, [escrow], refresh=0, payee=payee))
    try:
        # A forged form (another page posting here, with no token or a wrong one) is refused, and nothing is sent.
        for form in ({}, {"csrf": "guess"}):
            refused = httpx.post(served.url + "settle", data=form)
            assert refused.status_code == 403 and "CSRF" in refused.text
        assert lib_claimed(escrow, channel) == 0
        # A host name other than loopback's (DNS rebinding) is refused even with the token.
        browser.get(served.url + "settle")
        token = browser.find_element("css selector", "input[name=csrf]").get_attribute("value")
        rebound = httpx.post(served.url + "settle", data={"csrf": token}, headers={"Host": "evil.example"})
        assert rebound.status_code == 403 and lib_claimed(escrow, channel) == 0

        plan = payee.plan_settlement()
        assert wei(browser, "#dry-run .gross .amount") == [plan.gross] == [6 * MILLI]
        assert browser.find_element("css selector", "#dry-run .channels").get_attribute("data-count") == "1"
        browser.save_screenshot(str(screenshots / "freelancer-settle-dry-run.png"))
        browser.find_element("id", "confirm-settle").click()
        WebDriverWait(browser, 30).until(lambda b: b.find_elements("id", "settled"))
        assert wei(browser, "#settled .amount")[0] == 6 * MILLI
        assert lib_claimed(escrow, channel) == 6 * MILLI
        browser.save_screenshot(str(screenshots / "freelancer-settled.png"))
    finally:
        served.stop()


def lib_claimed(escrow, channel):
    return escrow.channel(channel.key).claimed


def test_a_client_reviews_a_delivered_task_seeing_exactly_what_it_signs(browser, chain, tmp_path, screenshots):
    import httpx

    from micropay.plan import PlanTask

    escrow, _ = chain
    freelancer, payee, payer = parties(chain, tmp_path, 0x61, 0x62)
    _, accepted, channel = agree_and_open(payer, payee, freelancer, "Site", (PlanTask("home", "Home page", 5 * MILLI),))
    delivery = payee.plans.give(freelancer, accepted.hash, "home", "delivered", deliverable=b"\x77" * 32)
    payer.plans.take_feedback(delivery.encode())
    served = Served(Dashboard(payer.store, payer.address, [escrow], refresh=0, payer=payer))
    try:
        browser.get(served.url)
        assert [li.get_attribute("data-task") for li in browser.find_elements("css selector", ".review li")] == ["home"]
        browser.get(f"{served.url}channels/0x{channel.id.hex()}")
        browser.find_element("link text", "Approve…").click()
        shown = {row.find_element("css selector", "th").text: row.find_element("css selector", "td").text
                 for row in browser.find_elements("css selector", "#will-sign tr")}
        assert shown["taskId"] == "home" and shown["status"] == "approved"
        assert shown["plan"] == "0x" + accepted.hash.hex() and shown["deliverable"].startswith("0x" + "77" * 32)
        browser.save_screenshot(str(screenshots / "client-review.png"))
        forged = httpx.post(f"{served.url}channels/0x{channel.id.hex()}/review",
                            data={"task": "home", "status": "approved"})
        assert forged.status_code == 403 and [f.signed.feedback.status for f in payer.store.feedback(accepted.hash)
                                              ] == ["delivered"]
        browser.find_element("id", "note").send_keys("lovely")
        browser.find_element("id", "confirm-review").click()
        WebDriverWait(browser, 15).until(lambda b: b.find_elements("id", "reviewed"))
        stored = [f.signed.feedback for f in payer.store.feedback(accepted.hash)]
        assert [(f.status, f.note, f.deliverable) for f in stored][-1] == ("approved", "lovely", b"\x77" * 32)
        browser.save_screenshot(str(screenshots / "client-reviewed.png"))
        again = httpx.get(f"{served.url}channels/0x{channel.id.hex()}/review?task=home&status=approved")
        assert again.status_code == 400 and "not waiting for a review" in again.text  # never signed twice
        browser.get(f"{served.url}channels/0x{channel.id.hex()}")
        assert not browser.find_elements("link text", "Approve…")
        assert browser.find_element("css selector", "#tasks .note").text == "lovely"
    finally:
        served.stop()


def test_the_pages_work_from_the_keyboard_and_at_200_percent_zoom(browser, chain, tmp_path, screenshots):
    from selenium.webdriver.common.keys import Keys

    escrow, _ = chain
    freelancer, payee, payer = parties(chain, tmp_path, 0x63, 0x64)
    channel = payer.open_channel(freelancer.address, 10**17)
    payee.receive(payer.pay(channel.id, 2 * MILLI, task="t"))
    served = Served(Dashboard(payee.store, payee.address, [escrow], refresh=0, payee=payee))
    try:
        browser.get(served.url)
        body = browser.find_element("tag name", "body")
        for _ in range(10):  # Tab through the links until "Settle now…" has the focus, then Enter
            body.send_keys(Keys.TAB) if _ == 0 else browser.switch_to.active_element.send_keys(Keys.TAB)
            if browser.switch_to.active_element.text == "Settle now…":
                break
        assert browser.switch_to.active_element.text == "Settle now…"
        outline = browser.execute_script("return getComputedStyle(document.activeElement).outlineStyle")
        assert outline != "none"  # the focus is visible
        browser.switch_to.active_element.send_keys(Keys.ENTER)
        WebDriverWait(browser, 10).until(lambda b: b.find_elements("id", "confirm-settle"))
        browser.get(served.url)
        browser.execute_script("document.body.style.zoom = '200%'")
        browser.save_screenshot(str(screenshots / "freelancer-overview-200.png"))
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0  # readable at 200% without scrolling sideways
    finally:
        served.stop()


def test_a_clients_close_request_is_flagged_on_the_freelancers_page(browser, chain, tmp_path):
    escrow, _ = chain
    freelancer, payee, payer = parties(chain, tmp_path, 0x65, 0x66)
    channel = payer.open_channel(freelancer.address, 10**17)
    payee.receive(payer.pay(channel.id, 2 * MILLI, task="t"))
    served = Served(Dashboard(payee.store, payee.address, [escrow], refresh=0.5))
    try:
        browser.get(served.url)
        assert not browser.find_elements("css selector", "#payee-channels .warning")
        payer.request_close(channel.id)
        WebDriverWait(browser, 15).until(lambda b: [w.text for w in b.find_elements(
            "css selector", "#payee-channels .warning")] == [
            "the client has started closing: settle before the window ends"])
        closing_at = escrow.channel(channel.key).expiry  # pulled in by the close request
        browser.get(f"{served.url}channels/0x{channel.id.hex()}")
        assert browser.find_element("css selector", ".facts time").get_attribute("data-unix") == str(closing_at)
    finally:
        served.stop()


def test_a_clients_page_reads_a_delivery_from_the_inbox_by_itself_and_shows_its_own_close(
        browser, chain, tmp_path, screenshots):
    from micropay.inbox import Inbox
    from micropay.plan import PlanTask

    escrow, fund = chain
    freelancer = fund(Account.from_key(b"\x67" * 32))
    payee = Payee(escrow, freelancer, tmp_path / "freelancer.db")
    inbox = Inbox(payee)
    served_inbox = Served(inbox.app)
    payer = Payer(escrow, fund(Account.from_key(b"\x68" * 32)), tmp_path / "client.db")
    _, accepted, channel = agree_and_open(payer, payee, freelancer, "Logo",
                                          (PlanTask("draft", "First draft", 3 * MILLI),),
                                          inbox=served_inbox.url.rstrip("/"))
    dashboard = Dashboard(payer.store, payer.address, [escrow], refresh=0.5, payer=payer)
    dashboard.inbox_reads.every = 0.5
    served = Served(dashboard.app)
    try:
        browser.get(f"{served.url}channels/0x{channel.id.hex()}")
        assert browser.find_element("css selector", ".status").text == "open"
        assert not browser.find_elements("link text", "Approve…")
        # The freelancer delivers; only its own store holds it. The client's open page shows it.
        payee.plans.give(freelancer, accepted.hash, "draft", "delivered", deliverable=b"\x55" * 32)
        WebDriverWait(browser, 20).until(lambda b: b.find_elements("link text", "Approve…"))
        assert [f.signed.feedback.status for f in payer.store.feedback(accepted.hash)] == ["delivered"]
        assert browser.find_element("css selector", ".inbox-read").text.startswith("read ")
        browser.save_screenshot(str(screenshots / "client-delivery-from-inbox.png"))
        payer.request_close(channel.id)
        WebDriverWait(browser, 15).until(lambda b: b.find_element("css selector", ".status").text.startswith(
            "closing: the freelancer may claim until it expires"))
        browser.get(served.url)
        assert "closing: the freelancer may claim until it expires, then reclaim the rest" in [
            w.text for w in browser.find_elements("css selector", "#payer-channels .warning")]
        browser.save_screenshot(str(screenshots / "client-closing.png"))
    finally:
        served.stop()
        served_inbox.stop()
        dashboard.close()
        inbox.close()


def test_a_page_that_can_no_longer_refresh_says_so(browser, chain, tmp_path):
    escrow, fund = chain
    freelancer = fund(Account.from_key(b"\x69" * 32))
    payee = Payee(escrow, freelancer, tmp_path / "freelancer.db")
    served = Served(Dashboard(payee.store, payee.address, [escrow], refresh=0.3))
    browser.get(served.url)
    assert not browser.find_element("id", "stale").is_displayed()
    served.stop()  # the dashboard stops answering: the figures on the page are as of now
    WebDriverWait(browser, 15).until(lambda b: b.find_element("id", "stale").is_displayed())
    assert browser.find_element("id", "stale").text.startswith("Not updated since ")
