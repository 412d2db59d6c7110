"""The typed errors of every BMC operation: callers decide on ``kind`` and ``retryable``, never on message text."""

from __future__ import annotations

from vaquero.bmc.values import BootSetting, PowerState


class BmcError(Exception):
    """A BMC operation failed. Carries the host name, never the password."""

    kind = "error"
    retryable = False

    def __init__(self, host: str, message: str, *, maybe_applied: bool = False) -> None:
        super().__init__(f"{host}: {message}")
        self.host = host
        self.message = message
        # True when the request may have reached the BMC (a non-idempotent call must not be repeated)
        self.maybe_applied = maybe_applied


class BmcAuthError(BmcError):
    kind = "auth"


class BmcUnreachable(BmcError):
    kind = "unreachable"
    retryable = True


class BmcCircuitOpen(BmcUnreachable):
    kind = "circuit_open"
    retryable = False


class BmcTimeout(BmcError):
    kind = "timeout"
    retryable = True


class BmcBusy(BmcTimeout):
    """Another operation held this BMC (or the global limit was full) for the whole deadline."""

    kind = "busy"
    retryable = False


class BmcUnsupported(BmcError):
    kind = "unsupported"


class BmcServerError(BmcError):
    """The BMC answered, with an error of its own (HTTP 5xx, IPMI completion code)."""

    kind = "server_error"
    retryable = True


class BmcProtocolError(BmcError):
    """The BMC answered something we cannot use (bad request, odd payload); not worth retrying."""

    kind = "protocol"


class BmcFenced(BmcError):
    """Refused before reaching the BMC: the controller that asked is (or may be) no longer the leader."""

    kind = "fenced"


class BmcStateNotReached(BmcError):
    """The BMC took a power request but the host did not reach the state within the wait (a BMC
    that accepts and ignores, a host stuck in a transition, an OS that never powers off)."""

    kind = "state_not_reached"

    def __init__(self, host: str, requested: str, target: PowerState, observed: PowerState, waited: float) -> None:
        super().__init__(
            host,
            f"power {requested}: asked for {target.value}, the BMC still reports {observed.value} after waiting {waited:.1f}s",
            maybe_applied=True,
        )
        self.requested = requested
        self.target = target
        self.observed = observed
        self.waited = waited


class BmcSettingNotApplied(BmcError):
    """The BMC accepted a boot setting but reads back another one: the host would not boot as asked."""

    kind = "setting_not_applied"

    def __init__(self, host: str, requested: BootSetting, observed: BootSetting, waited: float, note: str = "") -> None:
        super().__init__(
            host,
            f"boot override: asked for {requested.describe()}, the BMC reads back {observed.describe()} (after {waited:.1f}s){note}",
            maybe_applied=True,
        )
        self.requested = requested
        self.observed = observed
        self.waited = waited
