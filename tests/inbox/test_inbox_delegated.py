"""`micropay delegate` and `micropay serve --delegation`: a platform runs a freelancer's inbox with
its own key; the client's payments are acknowledged through the delegation and verified."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from inboxhelpers import PASSWORD, Freelancer, open_channel


def cli(home, *args) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "micropay", "--home", str(home), *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "MICROPAY_PASSWORD": PASSWORD}, check=False)


def test_a_platform_serves_a_freelancers_inbox_with_a_delegated_key(world, freelancer, make_client, tmp_path,
                                                                    store_locations):
    platform = Freelancer(world, tmp_path / "platform", store_locations)
    done = cli(freelancer.home, "--rpc", world.anvil.url, "delegate", platform.address, "--days", "7",
               "--escrow", world.escrow.address, "--out", str(tmp_path / "delegation.json"))
    assert done.returncode == 0, done.stderr
    delegation = json.loads((tmp_path / "delegation.json").read_text())
    assert (delegation["payee"], delegation["key"]) == (freelancer.address, platform.address)
    served = platform.serve("--delegation", str(tmp_path / "delegation.json"))
    try:
        assert f"inbox of {freelancer.address}" in served.line  # the freelancer's inbox, run by the platform
        client = make_client("delegated")
        channel = open_channel(client, freelancer.address)
        client.set_inbox(channel.id, served.url)
        client.pay(channel.id, 10**15, task="logo")
        (row,) = client.store.deliveries(channel.ref)
        assert row.state == "held"  # acknowledged by the platform's key, verified through the delegation
        answer = served.pay(client.pay(channel.id, 10**15, task="more", deliver=False).encode())
        assert answer.json()["acknowledgment"]["signer"] == platform.address
        assert answer.json()["acknowledgment"]["delegation"]["payee"] == freelancer.address
    finally:
        assert served.stop() == 0
    stranger = Freelancer(world, tmp_path / "stranger")  # a key the freelancer never delegated to
    refused = cli(stranger.home, "--rpc", world.anvil.url, "--confirmations", "0", "serve", "--port", "0",
                  "--delegation", str(tmp_path / "delegation.json"))
    assert refused.returncode != 0 and "no delegation from the payee" in refused.stderr
