"""Redfish transport failures are told apart and name the budget that ran out: a connect that never
completes (connect timeout, nothing sent), a peer that takes the request and never answers (read
timeout, may have been applied), a peer that closes the connection after the request (not "cannot
connect"), and a closed port. Real sockets on loopback, no mocks."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from vaquero.bmc import BmcTimeout, BmcUnreachable, Endpoint, Guard, GuardPolicy
from vaquero.bmc.redfish_driver import RedfishBmc


def ep(port: int) -> Endpoint:
    return Endpoint("redfish", "127.0.0.1", "admin", "not-a-real-password", host="node-t", port=port, scheme="http")


@pytest.fixture
def guard() -> Guard:
    # one attempt per test, and a guard of its own: no breaker state leaks between tests
    return Guard(policy=GuardPolicy(attempt_timeout=20.0, deadline=40.0, retries=0))


class Server:
    """A TCP listener on loopback: ``mode`` "full" (backlog full: connects hang), "silent" (reads the
    request, never answers) or "drop" (reads the request, closes the connection)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.requests = 0
        self.stop = threading.Event()
        self.held: list[socket.socket] = []
        self.thread: threading.Thread | None = None

    def __enter__(self) -> Server:
        if self.mode == "full":
            # Linux keeps backlog+1 completed connections; with one of ours parked there, the kernel
            # drops the next SYNs and a client's connect() waits out its timeout
            self.sock.listen(0)
            filler = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            self.held.append(filler)
        else:
            self.sock.listen(8)
            self.sock.settimeout(0.2)
            self.thread = threading.Thread(target=self._serve, daemon=True)
            self.thread.start()
        return self

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.settimeout(5)
            try:
                data = conn.recv(65536)
            except OSError:
                data = b""
            if data:
                self.requests += 1
            if self.mode == "drop":
                conn.close()
            else:
                self.held.append(conn)

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(5)
        for c in self.held:
            c.close()
        self.sock.close()


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with Server(request.param) as s:
        yield s


@pytest.mark.parametrize("server", ["full"], indirect=True)
def test_connect_that_never_completes_names_the_connect_timeout(server, guard):
    bmc = RedfishBmc(ep(server.port), guard, connect_timeout=1.5, read_timeout=9.0)
    with pytest.raises(BmcUnreachable) as ei:
        bmc.get_power_state()
    text = str(ei.value)
    assert "timed out after 1.5s (connect timeout)" in text and "9.0" not in text, text
    assert ei.value.maybe_applied is False  # nothing was sent


@pytest.mark.parametrize("server", ["silent"], indirect=True)
def test_request_sent_and_no_answer_names_the_read_timeout(server, guard):
    bmc = RedfishBmc(ep(server.port), guard, connect_timeout=1.5, read_timeout=1.0)
    with pytest.raises(BmcTimeout) as ei:
        bmc.get_power_state()
    text = str(ei.value)
    assert "no answer within 1.0s (read timeout)" in text and "connect" in text, text
    assert ei.value.maybe_applied is True and server.requests == 1


@pytest.mark.parametrize("server", ["drop"], indirect=True)
def test_connection_dropped_after_the_request_is_not_cannot_connect(server, guard):
    bmc = RedfishBmc(ep(server.port), guard)
    with pytest.raises(BmcUnreachable) as ei:
        bmc.get_power_state()
    text = str(ei.value)
    assert "closed after the request was sent" in text and "cannot connect" not in text, text
    assert ei.value.maybe_applied is True and server.requests == 1


def test_closed_port_is_cannot_connect_and_not_applied(guard):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: the connect is refused
        bmc = RedfishBmc(ep(port), guard)
        with pytest.raises(BmcUnreachable) as ei:
            bmc.get_power_state()
    assert "cannot connect" in str(ei.value) and "refused" in str(ei.value).lower()
    assert ei.value.maybe_applied is False


def test_the_budget_named_is_the_one_the_guard_lets_run(guard):
    """A read timeout longer than the guard's attempt is cut under it, so the driver (not the guard's
    generic deadline) ends the request and names the budget that really ran."""
    short = Guard(policy=GuardPolicy(attempt_timeout=5.0, deadline=10.0, retries=0))
    with Server("silent") as srv:
        bmc = RedfishBmc(ep(srv.port), short, read_timeout=15.0)
        with pytest.raises(BmcTimeout) as ei:
            bmc.get_power_state()
    assert "within 4.0s (read timeout)" in str(ei.value), str(ei.value)  # 80% of the attempt's 5 s
