#!/usr/bin/env python3
"""For a freelancer: receive every payment in a file (one per line), settle once, print a statement.

    scripts/redeem_vouchers.py [--rpc URL] [--escrow ADDRESS] [--keystore FILE] [--min-net AMOUNT] payments.txt

Options first, then the file. Every line is reported with its number (new, already held, older
than held, or rejected and why); the exit code is 1 only if a line was rejected for another
reason than being already held or older. Any global `micropay` option works (`--home`,
`--confirmations`, `--chain-id`...): this is `micropay [options] redeem [--min-net AMOUNT] payments.txt`.
"""

import sys

from micropay.cli import main

#: The options that belong to `redeem` itself (with a value, then without); all others are global.
REDEEM_OPTIONS = {"--min-net": True, "--wei": False}


def command_line(args: list[str]) -> list[str]:
    """`micropay`'s arguments for this script's: global options, `redeem`, its options, the file."""
    if not args or args[-1] in ("-h", "--help") or args[-1].startswith("-"):
        return [*[a for a in args if a not in ("-h", "--help")], "redeem", "--help"]
    *options, file = args
    global_options, redeem_options = [], []
    i = 0
    while i < len(options):
        name = options[i].split("=", 1)[0]
        takes_value = REDEEM_OPTIONS.get(name)
        target = global_options if takes_value is None else redeem_options
        target.append(options[i])
        if takes_value and "=" not in options[i] and i + 1 < len(options):
            target.append(options[i + 1])
            i += 1
        i += 1
    return [*global_options, "redeem", *redeem_options, file]


if __name__ == "__main__":
    sys.exit(main(command_line(sys.argv[1:]), prog_name="redeem_vouchers.py"))
