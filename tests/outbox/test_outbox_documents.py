"""Plan documents the client signs travel to the freelancer's inbox by themselves (`plan accept`,
`plan approve`...), and `progress --from-inbox` brings the freelancer's documents back."""

from __future__ import annotations

import json

from outbox_people import last_error_line

from micropay.plan import parse_plan


def write_plan(path, client, inbox=None):
    lines = ['title = "Brand refresh"', f'client = "{client}"']
    if inbox:
        lines.append(f'inbox = "{inbox}"')
    lines += ["", "[[tasks]]", 'id = "logo"', 'title = "Logo draft"', 'price = "0.005 ETH"']
    path.write_text("\n".join(lines) + "\n")
    return path


def propose(freelancer, escrow, tmp_path, client, inbox):
    source = write_plan(tmp_path / "plan.toml", client.address, inbox=inbox)
    return freelancer.run("--escrow", escrow, "plan", "propose", str(source)).stdout.strip()


def held_by(person, plan_hash):
    with person.store() as store:
        return store.plan(plan_hash)


def feedback_of(person, root):
    with person.store() as store:
        return [(f.signed.feedback.task_id, f.signed.feedback.status) for f in store.feedback(root)]


def test_an_acceptance_reaches_the_freelancers_store_by_itself(people, tmp_path, freelancer_inbox):
    client, freelancer, escrow = people
    freelancer_inbox.start()
    proposal = propose(freelancer, escrow, tmp_path, client, freelancer_inbox.url)
    result = client.run("plan", "accept", proposal, "--yes")
    accepted = parse_plan(result.stdout.strip())  # still printed, as without an inbox
    assert result.stderr.strip().splitlines()[-1] == f"delivered to the freelancer's inbox at {freelancer_inbox.url}"
    stored = held_by(freelancer, accepted.hash)
    assert stored is not None and stored.signed.in_force and stored.signed == accepted


def test_no_deliver_keeps_it_local(people, tmp_path, freelancer_inbox):
    client, freelancer, escrow = people
    freelancer_inbox.start()
    proposal = propose(freelancer, escrow, tmp_path, client, freelancer_inbox.url)
    result = client.run("plan", "accept", proposal, "--yes", "--no-deliver")
    accepted = parse_plan(result.stdout.strip())
    assert "send the text above to" in result.stderr.strip().splitlines()[-1]
    assert not held_by(freelancer, accepted.hash).signed.in_force  # the freelancer holds only its proposal


def test_a_delivery_comes_back_with_progress_and_the_approval_goes_out(people, tmp_path, freelancer_inbox):
    client, freelancer, escrow = people
    freelancer_inbox.start()
    proposal = propose(freelancer, escrow, tmp_path, client, freelancer_inbox.url)
    accepted = parse_plan(client.run("plan", "accept", proposal, "--yes").stdout.strip())
    channel = client.json("open", "--plan", accepted.encode())["channel"]
    assert last_error_line(client.run("plan", "approve", channel, "logo", ok=False)).startswith("error: ")

    delivered = freelancer.run("plan", "delivered", channel, "logo", "--note", "v1")  # on its own store only
    assert "delivered to the freelancer's inbox" not in delivered.stderr  # the client has no inbox
    assert feedback_of(client, accepted.hash) == []

    before = client.json("progress", channel)
    assert [t["state"] for t in before["tasks"]] != ["delivered"]
    read = client.run("progress", channel, "--from-inbox", "--json")
    assert "read 2 documents from the freelancer's inbox at " + freelancer_inbox.url in read.stderr
    assert feedback_of(client, accepted.hash) == [("logo", "delivered")]
    assert [t["state"] for t in json.loads(read.stdout)["tasks"]] == ["delivered"]

    approved = client.run("plan", "approve", channel, "logo", "--note", "great")
    assert approved.stderr.strip() == (f"task 'logo' marked approved: delivered to the freelancer's inbox at "
                                       f"{freelancer_inbox.url}")
    assert ("logo", "approved") in feedback_of(freelancer, accepted.hash)


def test_with_the_inbox_down_accept_still_succeeds_and_says_so(people, tmp_path, nowhere):
    client, freelancer, escrow = people
    proposal = propose(freelancer, escrow, tmp_path, client, nowhere)
    result = client.run("plan", "accept", proposal, "--yes")
    accepted = parse_plan(result.stdout.strip())
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"not delivered (cannot reach the inbox at {nowhere}: ") and last.endswith(
        f"send it yourself: send the text above to {freelancer.address}, who runs `micropay plan receive` on it")
    assert held_by(client, accepted.hash).signed.in_force
    assert not held_by(freelancer, accepted.hash).signed.in_force


def test_progress_from_inbox_without_an_inbox_is_one_clean_line(people, tmp_path):
    client, freelancer, escrow = people
    proposal = propose(freelancer, escrow, tmp_path, client, None)
    accepted = client.run("plan", "accept", proposal, "--yes").stdout.strip()
    channel = client.json("open", "--plan", accepted)["channel"]
    refused = client.run("progress", channel, "--from-inbox", ok=False)
    assert refused.exit_code == 1 and last_error_line(refused).endswith("run `micropay progress` without --from-inbox")


def test_the_freelancer_accepts_an_amendment_its_inbox_took_by_its_hash(people, tmp_path, freelancer_inbox):
    client, freelancer, escrow = people
    freelancer_inbox.start()
    proposal = propose(freelancer, escrow, tmp_path, client, freelancer_inbox.url)
    accepted = parse_plan(client.run("plan", "accept", proposal, "--yes").stdout.strip())
    source = write_plan(tmp_path / "plan-v2.toml", client.address)  # no inbox: the plan's is kept
    source.write_text(source.read_text() + '\n[[tasks]]\nid = "cards"\ntitle = "Cards"\nprice = "0.001 ETH"\n')
    amended = client.run("plan", "amend", "0x" + accepted.hash.hex(), str(source))
    amendment = parse_plan(amended.stdout.strip())
    assert amended.stderr.strip().splitlines()[-1] == f"delivered to the freelancer's inbox at {freelancer_inbox.url}"
    assert amendment.plan.inbox == freelancer_inbox.url
    taken = freelancer.run("plan", "accept", "0x" + amendment.hash.hex()[:10], "--yes")  # no text copied
    assert "accepted" in taken.stderr and held_by(freelancer, amendment.hash).signed.in_force
