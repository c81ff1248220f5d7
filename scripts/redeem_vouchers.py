#!/usr/bin/env python3
"""For a freelancer: receive every payment in a file (one per line), settle once, print a statement.

    python scripts/redeem_vouchers.py --rpc URL [--escrow ADDRESS] [--keystore FILE] payments.txt

The same as `micropay [options] redeem payments.txt`; the logic lives in micropay.cli.
"""

import sys

from micropay.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    files = [a for a in args if not a.startswith("-")]
    # Global options first, then the command and its file (the file is the last argument).
    sys.exit(main([*args[:-1], "redeem", args[-1]] if files else ["redeem", "--help"], prog_name="redeem_vouchers"))
