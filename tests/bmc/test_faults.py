"""Faults injected for real: every one ends in a typed error (the guard's deadlines bound the time
it takes; how long is a benchmark's business, not an assertion), and the password never shows up
in a log, an exception or the captured output."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import textwrap
import uuid

import pytest
from bmc_helpers import PASSWORD, FaultHTTP, free_port, start_ipmi_fleet, stop
from requirements import missing, need, need_root
from waiting import wait_until

from vaquero.bmc import (
    BmcAuthError,
    BmcCircuitOpen,
    BmcError,
    BmcServerError,
    BmcTimeout,
    BmcUnreachable,
    Endpoint,
    Guard,
    GuardPolicy,
    PowerState,
    open_bmc,
)


@pytest.fixture(autouse=True)
def _debug_logs(caplog):
    caplog.set_level(logging.DEBUG)


@pytest.fixture(autouse=True)
def _never_the_password(caplog, capfd):
    yield
    out, err = capfd.readouterr()
    assert PASSWORD not in caplog.text and PASSWORD not in out and PASSWORD not in err


def failing(fn) -> BmcError:
    """The typed error ``fn`` ends in (anything else, or no error, fails the test)."""
    try:
        fn()
    except BmcError as exc:
        assert PASSWORD not in str(exc) and PASSWORD not in repr(exc.args)
        return exc
    raise AssertionError("no error raised")


def power_state(ep: Endpoint, guard: Guard) -> PowerState:
    """One read through a driver that is closed afterwards, as the product's callers do: a driver
    keeps its hold on the BMC until it is closed (a failed call's driver, kept alive by the
    exception's traceback, would otherwise hold it until the garbage collector runs)."""
    with open_bmc(ep, guard) as bmc:
        return bmc.get_power_state()


def ipmi_ep(port: int, **kw) -> Endpoint:
    return Endpoint("ipmi", "127.0.0.1", "admin", kw.pop("password", PASSWORD), host=kw.pop("host", "faulty"), port=port, **kw)


def rf_ep(port: int, **kw) -> Endpoint:
    return Endpoint("redfish", "127.0.0.1", "admin", PASSWORD, host="faulty", port=port, scheme="http", **kw)


# --- IPMI -------------------------------------------------------------------------------------


def test_ipmi_packets_dropped(silent_udp, fast_guard):
    exc = failing(lambda: power_state(ipmi_ep(silent_udp), fast_guard))
    assert isinstance(exc, BmcUnreachable | BmcTimeout) and exc.host == "faulty"


def test_ipmi_port_closed(fast_guard):
    exc = failing(lambda: power_state(ipmi_ep(free_port(socket.SOCK_DGRAM)), fast_guard))
    assert isinstance(exc, BmcUnreachable | BmcTimeout)


def test_ipmi_wrong_password_fails_fast_without_retries(ipmi_bmc, fast_guard, caplog):
    exc = failing(lambda: power_state(ipmi_bmc.endpoint(password="wrong-password"), fast_guard))
    assert isinstance(exc, BmcAuthError) and exc.host == "node0"
    assert not [r for r in caplog.records if "retrying" in r.getMessage()]  # one attempt: a refused password is final


def test_ipmi_slow_bmc_times_out(tmp_path):
    fleet = start_ipmi_fleet(tmp_path, delay=1.5)
    try:
        guard = Guard(policy=GuardPolicy(attempt_timeout=1.0, deadline=2.5, retries=1, backoff_base=0.05))
        exc = failing(lambda: power_state(fleet.endpoint(), guard))
        assert isinstance(exc, BmcTimeout | BmcUnreachable)
    finally:
        stop(fleet.proc)


def test_ipmi_bmc_that_goes_away_and_comes_back(tmp_path):
    """Flapping: the BMC process dies, calls fail typed and the breaker opens; it comes back on
    the same port and the half-open trial call succeeds."""
    fleet = start_ipmi_fleet(tmp_path)
    # a reset long enough that the breaker is still open for the second call on a loaded machine
    guard = Guard(policy=GuardPolicy(attempt_timeout=5, deadline=9, retries=1, backoff_base=0.05, breaker_threshold=2, breaker_reset=3.0))
    ep = fleet.endpoint()
    assert power_state(ep, guard) == PowerState.OFF
    stop(fleet.proc)
    exc = failing(lambda: power_state(ep, guard))
    assert isinstance(exc, BmcUnreachable | BmcTimeout)
    exc = failing(lambda: power_state(ep, guard))
    assert isinstance(exc, BmcCircuitOpen)
    fleet2 = start_ipmi_fleet(tmp_path, port=fleet.port)
    try:
        wait_until(lambda: guard.breaker_state(ep.key) == "half_open", 60, "the breaker to half-open")
        assert power_state(ep, guard) == PowerState.OFF
        assert guard.breaker_state(ep.key) == "closed"
    finally:
        stop(fleet2.proc)


# --- Redfish ----------------------------------------------------------------------------------


def test_redfish_500s_end_in_server_error_then_open_circuit(fast_guard, caplog):
    with FaultHTTP("500") as srv:
        ep = rf_ep(srv.port)
        exc = failing(lambda: power_state(ep, fast_guard))
        assert isinstance(exc, BmcServerError | BmcCircuitOpen)
        sent = srv.requests
        assert sent == 3  # one per attempt: retries bounded, and the client's own 10 retries are off
        exc = failing(lambda: power_state(ep, fast_guard))
        assert isinstance(exc, BmcCircuitOpen)
        assert srv.requests == sent  # the dead BMC is not hammered
    warnings = [r for r in caplog.records if r.name == "vaquero.bmc" and r.levelno >= logging.WARNING]
    assert warnings and all(getattr(r, "host", None) == "faulty" for r in warnings)


def test_redfish_slow_answers_time_out(fast_guard):
    from vaquero.bmc.redfish_driver import RedfishBmc

    with FaultHTTP("slow", delay=2.0) as srv:
        bmc = RedfishBmc(rf_ep(srv.port), fast_guard, read_timeout=0.5, connect_timeout=0.5)
        exc = failing(bmc.get_power_state)
        assert isinstance(exc, BmcTimeout | BmcCircuitOpen)


def test_redfish_flapping_bmc_recovers_with_retries():
    guard = Guard(policy=GuardPolicy(attempt_timeout=3, deadline=10, retries=4, backoff_base=0.1, backoff_max=0.3, breaker_threshold=50))
    with FaultHTTP("flap") as srv:
        results = []
        for _ in range(5):
            try:
                # closed each time: an open driver holds its BMC until close()
                with open_bmc(rf_ep(srv.port), guard) as bmc:
                    results.append(bmc.get_power_state())
            except BmcError as exc:  # typed, always
                results.append(exc)
        assert results == [PowerState.ON] * 5 and srv.refused > 0, results  # it did flap, and the retries got every call through


def test_redfish_port_closed(fast_guard):
    exc = failing(lambda: power_state(rf_ep(free_port()), fast_guard))
    assert isinstance(exc, BmcUnreachable | BmcCircuitOpen)


def test_redfish_tcp_packets_dropped_in_a_netns(tmp_path):
    """In a network namespace of our own, iptables drops everything to the BMC port: the TCP
    connect never completes and the driver reports the BMC unreachable (its connect timeout named)."""
    need_root("network namespaces and iptables")
    need("ip", "iproute2")
    need("iptables")
    ns = f"vqbmc-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        rule = ["ip", "netns", "exec", ns, "iptables", "-A", "INPUT", "-p", "tcp", "--dport", "8443", "-j", "DROP"]
        res = subprocess.run(rule, capture_output=True, text=True)
        if res.returncode != 0:
            missing(f"iptables does not work in a network namespace here (kernel netfilter modules / the iptables package): {res.stderr.strip()}")
        script = textwrap.dedent(
            f"""
            from vaquero.bmc import Endpoint, Guard, GuardPolicy, BmcError, BmcUnreachable
            from vaquero.bmc.redfish_driver import RedfishBmc
            g = Guard(policy=GuardPolicy(attempt_timeout=3, deadline=6, retries=1, backoff_base=0.05))
            ep = Endpoint("redfish", "127.0.0.1", "admin", "{PASSWORD}", host="dropped", port=8443)
            try:
                RedfishBmc(ep, g, connect_timeout=1.0).get_power_state()
                print("NO ERROR")
            except BmcError as e:
                print(type(e).__name__, isinstance(e, BmcUnreachable), "timed-out" if "timed out after 1.0s" in str(e) else repr(str(e)))
            """
        )
        out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        _name, unreachable, how = out.stdout.split(maxsplit=2)
        assert unreachable == "True" and how.strip() == "timed-out", out.stdout
        assert PASSWORD not in out.stdout + out.stderr
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
