"""vaquero.policy: reboot windows, min_available, max_concurrent, dependencies, failure budget.

Evaluated twice, with the same rules:

- at plan time, ``waves.schedule(new_sot, changes, in_service, now=None) -> Schedule``: the waves a
  person sees in ``vaquero plan`` and the ``decisions`` that explain them (every in-service host is
  assumed ready; ``now`` adds "wave N waits: window opens ..." and ``Wave.not_before``);
- at run time, before every wave and after every failure (``runtime``):
  ``gate(sot, cluster, wave, states, now, revisions=None) -> Allow | Wait | Hold`` and
  ``budget(cluster, host, failures) -> Continue | Retry | Halt | Rollback``.

``windows.next_span(windows, now) -> Span | None`` answers when a cluster's window is open or opens
next (in the window's time zone, across midnight, DST-safe). Dependency cycles are rejected by SoT
validation (``vaquero.sot.validate``), so the planner may assume none.
"""

from .runtime import Allow, Continue, Halt, Hold, Outcome, Retry, Rollback, Verdict, Wait, budget, gate
from .waves import Schedule, Step, Wave, schedule
from .windows import Span, is_open, next_span

__all__ = [
    "Allow",
    "Continue",
    "Halt",
    "Hold",
    "Outcome",
    "Retry",
    "Rollback",
    "Schedule",
    "Span",
    "Step",
    "Verdict",
    "Wait",
    "Wave",
    "budget",
    "gate",
    "is_open",
    "next_span",
    "schedule",
]
