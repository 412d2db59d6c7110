"""Enrollment by pull request: an inspected machine the SoT does not know becomes a proposed SoT
change, one new host file (``hostfile``), on a branch and a pull request (``pull``) or in a patch
file when no GitHub token is set (``patch``). The leader's ``Proposer`` turns the store's
``/inspections/*`` records into those proposals. Nothing is installed by a proposal: only its merge
makes a revision, whose plan waits for approval like any other.

This package sits above the gate (it uses the gate's GitHub client and bounded validation) and the
inspection records, which are siblings that may not import each other.
"""

from .hostfile import HostFile, free_address, host_file
from .proposer import Proposer

__all__ = ["HostFile", "Proposer", "free_address", "host_file"]
