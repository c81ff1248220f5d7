from micropay.cli import run

run()
