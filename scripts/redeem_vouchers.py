#!/usr/bin/env python3
"""For a freelancer: receive every payment in a file (one per line), settle once, print a statement.

    scripts/redeem_vouchers.py [--rpc URL] [--escrow ADDRESS] [--keystore FILE] [--min-net AMOUNT] payments.txt

Options first, then the file. Every line is reported with its number (new, already held, older
than held, or rejected and why); the exit code is 1 only if a line was rejected for another
reason than being already held or older. Any global `micropay` option works (`--home`,
`--confirmations`, `--chain-id`...): this is `micropay [options] redeem [--min-net AMOUNT] payments.txt`.
"""

import sys

import click

from micropay.cli import main

#: The options that belong to `redeem` itself (with a value, then without); all others are global.
REDEEM_OPTIONS = {"--min-net": True, "--wei": False}
HELP = ("-h", "--help")


def takes_value(option: str) -> bool:
    """Whether ``option`` (a name, without ``=value``) is followed by its value."""
    if option in REDEEM_OPTIONS:
        return REDEEM_OPTIONS[option]
    return any(option in param.opts and not param.is_flag for param in main.params if isinstance(param, click.Option))


def wants_usage(args: list[str]) -> bool:
    """Whether to print this script's usage (its docstring) instead of running: asked for with
    --help or -h, or no file given (nothing, or options only: the last word is an option's value)."""
    if not args or any(arg in HELP for arg in args) or args[-1].startswith("-"):
        return True
    return len(args) > 1 and args[-2].startswith("-") and "=" not in args[-2] and takes_value(args[-2])


def command_line(args: list[str]) -> list[str]:
    """`micropay`'s arguments for this script's: global options, `redeem`, its options, the file."""
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


def run(args: list[str]) -> int:
    """Run the script with ``args``; its exit code. The usage is this script's own (options,
    then the file), not that of `micropay redeem`: exit 0 when asked for, 2 when no file was given."""
    if wants_usage(args):
        asked = any(arg in HELP for arg in args)
        print(__doc__.strip(), file=sys.stdout if asked else sys.stderr)
        if not asked:
            print("\nerror: give the payments file last, after the options", file=sys.stderr)
        return 0 if asked else 2
    return main(command_line(args), prog_name="redeem_vouchers.py")  # exits with micropay's code


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
