"""`python -m vaquero.agent ...`: the same as `vaquero agent ...`."""

import argparse
import sys

from .cli import add_arguments, run

parser = argparse.ArgumentParser(prog="vaquero-agent")
add_arguments(parser)
sys.exit(run(parser.parse_args()))
