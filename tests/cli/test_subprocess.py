"""Real processes: the console script, `python -m micropay` and the redeem script, where what matters
is the process itself (exit codes, no terminal for a password, file modes, the run bit)."""

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from micropay.store import VoucherStore

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "pw-for-tests"


def micropay(*args, home, env=None, input=None, password=True):
    environment = {**os.environ, **(env or {})}
    environment.pop("MICROPAY_PASSWORD", None)
    if password:
        environment["MICROPAY_PASSWORD"] = PASSWORD
    # A new session has no controlling terminal: nobody to ask a password of, as under cron or a service.
    return subprocess.run([sys.executable, "-m", "micropay", "--home", str(home), *args], check=False,
                          capture_output=True, text=True, timeout=120, env=environment, start_new_session=True,
                          input=input, stdin=None if input is not None else subprocess.DEVNULL)


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
    assert PASSWORD not in created.stdout + created.stderr


def test_no_password_and_no_terminal_says_to_set_the_variable(tmp_path):
    result = micropay("account", "new", home=tmp_path, password=False)
    assert result.returncode == 1
    assert result.stderr == ("error: no terminal to ask for the key file's password on: set MICROPAY_PASSWORD\n")
    assert not (tmp_path / "keystores").exists()


def test_a_piped_private_key_needs_no_terminal(tmp_path):
    key = "0x" + "4f" * 32
    result = micropay("account", "import", home=tmp_path, input=key + "\n")
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr and "4f4f" not in result.stdout + result.stderr
    assert result.stdout.startswith("0x")


def test_export_writes_a_private_file(tmp_path):
    out = tmp_path / "backup.json"
    out.write_text("older backup\n")
    out.chmod(0o644)
    (tmp_path / "home").mkdir()
    VoucherStore(tmp_path / "home" / "micropay.db").close()  # export reads a store, it starts none
    result = micropay("export", str(out), home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert json.loads(out.read_text())["format"] == "micropay-bundle"
    fresh = tmp_path / "fresh.json"
    assert micropay("export", str(fresh), home=tmp_path / "home").returncode == 0
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600


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
    redeem = ROOT / "scripts" / "redeem_vouchers.py"
    assert os.access(redeem, os.X_OK), "scripts/redeem_vouchers.py must have its run bit (git update-index --chmod=+x)"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    helped = subprocess.run([str(redeem), "--help"], check=False, capture_output=True, text=True, env=env)
    assert helped.returncode == 0 and "settle once" in helped.stdout and "redeem_vouchers.py" in helped.stdout
