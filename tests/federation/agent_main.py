"""`vaquero agent --controller ...` as the lead wires it, in its own process, for the restart test:
the agent's options plus the federation's, then `run_federated`. (--sot is still required by
agent/cli.py until the wiring makes it optional; the federated agent ignores it.)"""

from __future__ import annotations

import argparse
import sys

from vaquero.agent.cli import add_arguments
from vaquero.federation.agent import run_federated
from vaquero.federation.client import add_arguments as add_federation_arguments

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="vaquero-agent")
    add_arguments(parser)
    add_federation_arguments(parser)
    sys.exit(run_federated(parser.parse_args(["--sot", "unused", *sys.argv[1:]])))
