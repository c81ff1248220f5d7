"""Real processes: the console script and `python -m micropay`, one run per command group."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def micropay(*args, home, env=None):
    return subprocess.run([sys.executable, "-m", "micropay", "--home", str(home), *args], check=False,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MICROPAY_PASSWORD": "pw-for-tests", **(env or {})})


def test_demo_in_a_real_process(tmp_path):
    result = micropay("demo", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "CLOSING STATEMENT" in result.stdout and "total paid                    0.025 ETH" in result.stdout
    assert result.stdout.count("mpp1") == 5  # each voucher printed as the client sends it


def test_account_group_in_a_real_process(tmp_path):
    created = micropay("account", "new", home=tmp_path)
    assert created.returncode == 0, created.stderr
    address = created.stdout.split()[0]
    listed = json.loads(micropay("account", "list", "--json", home=tmp_path).stdout)
    assert [entry["address"] for entry in listed] == [address]
    assert "pw-for-tests" not in created.stdout + created.stderr


def test_chain_commands_fail_cleanly_in_a_real_process(tmp_path):
    result = micropay("--rpc", "http://127.0.0.1:9", "settle", home=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]  # one line
    assert result.stderr.startswith("error: cannot reach the node") and "Traceback" not in result.stderr


def test_console_script_and_redeem_script_are_installed(tmp_path):
    script = shutil.which("micropay", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.fail("the micropay console script is not installed next to this Python")
    version = subprocess.run([script, "--version"], check=False, capture_output=True, text=True)
    assert version.stdout.startswith("micropay")
    helped = subprocess.run([sys.executable, str(ROOT / "scripts" / "redeem_vouchers.py"), "--help"],
                            check=False, capture_output=True, text=True)
    assert helped.returncode == 0 and "settle once" in helped.stdout
