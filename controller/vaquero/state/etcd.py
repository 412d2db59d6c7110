"""The HA Store: etcd v3 through its JSON gateway (/v3/...), with httpx.

Why the gateway and not a gRPC client: the `etcd3` PyPI client breaks with current protobuf, and
the gateway needs nothing but HTTP. Keys and values travel base64-encoded; int64 fields are JSON
strings; fields at their default value (0, false, PUT) are left out of responses.

- Several endpoints: calls go to the last one that answered; on a connection error, a 5xx or a
  timeout the next one is tried. Writes are retried on another member only when they surely were
  not applied (connection refused, or "no leader" refused before the write was proposed); a write
  that timed out raises StoreUnavailable, since its outcome is unknown.
- Every request carries `Grpc-Metadata-hasleader: true`: a member that has lost quorum answers
  503 at once instead of hanging, and that becomes StoreUnavailable.
- Every call has a timeout. A `prefix` (e.g. /vaquero) lets several installations share a cluster:
  it is added to every key on the way in and removed on the way out.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import threading
from collections.abc import Iterator
from typing import Any

import httpx

from .store import FenceLost, Lease, LeaseExpired, Record, Store, StoreUnavailable, WatchCompacted, WatchEvent

__all__ = ["EtcdStore", "WatchCompacted"]

log = logging.getLogger(__name__)

_HEADERS = {"Grpc-Metadata-hasleader": "true", "Content-Type": "application/json"}


class _Unsent(Exception):
    """The request did not reach (or was refused before being applied by) a member: safe to retry anywhere."""


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(data: str) -> str:
    return base64.b64decode(data).decode()


def _range_end(prefix: str) -> str:
    """etcd's prefix range end: the prefix with its last byte incremented (bytes, base64)."""
    raw = bytearray(prefix.encode())
    while raw:
        if raw[-1] < 0xFF:
            raw[-1] += 1
            return base64.b64encode(bytes(raw)).decode()
        raw.pop()
    return base64.b64encode(b"\0").decode()  # the whole keyspace


class EtcdStore(Store):
    def __init__(
        self,
        endpoints: list[str] | str,
        *,
        prefix: str = "",
        timeout: float = 2.0,
        connect_timeout: float = 0.5,
        ready_timeout: float = 0.5,
    ) -> None:
        if isinstance(endpoints, str):
            endpoints = [e for e in endpoints.split(",") if e]
        if not endpoints:
            raise ValueError("EtcdStore needs at least one endpoint")
        self.endpoints = [e if "://" in e else f"http://{e}" for e in endpoints]
        self.endpoints = [e.rstrip("/") for e in self.endpoints]
        self.prefix = prefix.rstrip("/")
        self.timeout = timeout
        self.ready_timeout = min(ready_timeout, timeout)
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self._client = httpx.Client(headers=_HEADERS, timeout=self._timeout)
        self._current = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"EtcdStore({','.join(self.endpoints)}, prefix={self.prefix!r})"

    # -- plumbing --
    def _k(self, key: str) -> str:
        return self.prefix + key

    def _unk(self, raw_b64: str) -> str:
        key = _unb64(raw_b64)
        return key[len(self.prefix) :] if self.prefix and key.startswith(self.prefix) else key

    def _post_one(self, endpoint: str, path: str, body: dict[str, Any], *, idempotent: bool, timeout: httpx.Timeout | None = None) -> dict[str, Any]:
        try:
            resp = self._client.post(endpoint + path, content=json.dumps(body), timeout=timeout or self._timeout)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise _Unsent(f"{endpoint}: {exc}") from None
        except httpx.HTTPError as exc:  # timed out or broken after sending: outcome unknown
            if idempotent:
                raise _Unsent(f"{endpoint}: {type(exc).__name__} {exc}") from None
            raise StoreUnavailable(f"etcd {endpoint}{path}: {type(exc).__name__} after sending; outcome unknown") from None
        try:
            data: dict[str, Any] = resp.json()
        except ValueError:
            data = {"error": resp.text[:200]}
        if resp.status_code == 200:
            return data
        message = str(data.get("message") or data.get("error") or resp.text[:200])
        if "lease not found" in message:
            raise LeaseExpired(message)
        if resp.status_code >= 500 or data.get("code") in (4, 14):  # DeadlineExceeded, Unavailable
            # "no leader" (the hasleader header) is refused before any proposal: safe to retry.
            if idempotent or "no leader" in message:
                raise _Unsent(f"{endpoint}: {resp.status_code} {message}")
            raise StoreUnavailable(f"etcd {endpoint}{path}: {resp.status_code} {message}")
        raise RuntimeError(f"etcd {endpoint}{path}: HTTP {resp.status_code}: {message}")

    def _call(self, path: str, body: dict[str, Any], *, idempotent: bool = True, timeout: httpx.Timeout | None = None) -> dict[str, Any]:
        """POST to the current endpoint, failing over to the others; StoreUnavailable when none answers."""
        errors: list[str] = []
        start = self._current
        for i in range(len(self.endpoints)):
            index = (start + i) % len(self.endpoints)
            endpoint = self.endpoints[index]
            try:
                result = self._post_one(endpoint, path, body, idempotent=idempotent, timeout=timeout)
            except _Unsent as exc:
                errors.append(str(exc))
                log.debug("etcd %s%s failed, trying the next endpoint: %s", endpoint, path, exc)
                continue
            if index != self._current:
                log.info("etcd: now using %s", endpoint)
                self._current = index
            return result
        raise StoreUnavailable("etcd: no endpoint answered: " + "; ".join(errors))

    def _record(self, kv: dict[str, Any]) -> Record:
        value = json.loads(_unb64(kv["value"])) if kv.get("value") else {}
        return Record(self._unk(kv["key"]), value, int(kv.get("mod_revision", 0)))

    @staticmethod
    def _lease_id(lease: Lease | None) -> dict[str, str]:
        return {"lease": str(lease.id)} if lease else {}

    # -- Store --
    def get(self, key: str) -> Record | None:
        data = self._call("/v3/kv/range", {"key": _b64(self._k(key))})
        kvs = data.get("kvs") or []
        return self._record(kvs[0]) if kvs else None

    def put(self, key: str, value: dict[str, Any], *, lease: Lease | None = None) -> int:
        body = {"key": _b64(self._k(key)), "value": _b64(json.dumps(value, separators=(",", ":"))), **self._lease_id(lease)}
        data = self._call("/v3/kv/put", body, idempotent=False)
        return int(data["header"]["revision"])

    def cas(self, key: str, value: dict[str, Any], *, expect: int, lease: Lease | None = None) -> int | None:
        k = _b64(self._k(key))
        put = {"key": k, "value": _b64(json.dumps(value, separators=(",", ":"))), **self._lease_id(lease)}
        # A missing key has mod_revision 0 in etcd, so expect=0 means "must not exist".
        body = {
            "compare": [{"key": k, "target": "MOD", "result": "EQUAL", "mod_revision": str(expect)}],
            "success": [{"request_put": put}],
        }
        data = self._call("/v3/kv/txn", body, idempotent=False)
        if not data.get("succeeded"):
            return None
        return int(data["header"]["revision"])

    def fenced_write(self, key: str, value: dict[str, Any] | None, *, expect: int | None, fence: tuple[str, int]) -> int | None:
        k = _b64(self._k(key))
        fk = _b64(self._k(fence[0]))
        compare = [{"key": fk, "target": "MOD", "result": "EQUAL", "mod_revision": str(fence[1])}]
        if expect is not None:
            compare.append({"key": k, "target": "MOD", "result": "EQUAL", "mod_revision": str(expect)})
        if value is None:
            op: dict[str, Any] = {"request_delete_range": {"key": k}}
        else:
            op = {"request_put": {"key": k, "value": _b64(json.dumps(value, separators=(",", ":")))}}
        # On failure, read the fence key in the same transaction: which comparison failed decides
        # between FenceLost (a newer leader) and None (a plain compare-and-set conflict).
        body = {"compare": compare, "success": [op], "failure": [{"request_range": {"key": fk, "keys_only": True}}]}
        data = self._call("/v3/kv/txn", body, idempotent=False)
        responses = data.get("responses") or [{}]
        if not data.get("succeeded"):
            kvs = (responses[0].get("response_range") or {}).get("kvs") or []
            if not kvs or int(kvs[0].get("mod_revision", 0)) != fence[1]:
                raise FenceLost(f"{key}: not written: {fence[0]} is no longer at revision {fence[1]}")
            return None
        if value is None and int((responses[0].get("response_delete_range") or {}).get("deleted", 0)) == 0:
            return None
        return int(data["header"]["revision"])

    def delete(self, key: str) -> bool:
        data = self._call("/v3/kv/deleterange", {"key": _b64(self._k(key))}, idempotent=False)
        return int(data.get("deleted", 0)) > 0

    def list(self, prefix: str) -> list[Record]:
        records: list[Record] = []
        full = self._k(prefix)
        start = _b64(full)
        end = _range_end(full)
        revision = 0  # later pages read at the first page's revision: one consistent snapshot
        while True:
            body: dict[str, Any] = {"key": start, "range_end": end, "sort_order": "ASCEND", "sort_target": "KEY", "limit": "1000"}
            if revision:
                body["revision"] = str(revision)
            data = self._call("/v3/kv/range", body)
            revision = revision or int(data["header"]["revision"])
            kvs = data.get("kvs") or []
            records.extend(self._record(kv) for kv in kvs)
            if not data.get("more") or not kvs:
                return records
            start = base64.b64encode(base64.b64decode(kvs[-1]["key"]) + b"\0").decode()

    def revision(self, *, timeout: httpx.Timeout | None = None) -> int:
        """The cluster's current revision (every write raises it by one); a linearizable read, so it needs quorum."""
        data = self._call("/v3/kv/range", {"key": _b64(self._k("/")), "limit": "1", "keys_only": True}, timeout=timeout)
        return int(data["header"]["revision"])

    def watch(self, prefix: str, *, since: int, timeout: float) -> Iterator[WatchEvent]:
        """Stream changes after `since` with /v3/watch; reconnects to another member from the last revision seen."""
        full = self._k(prefix)
        last = since
        failures = 0
        while True:
            endpoint = self.endpoints[self._current]
            body = {"create_request": {"key": _b64(full), "range_end": _range_end(full), "start_revision": str(last + 1)}}
            got_any = False
            try:
                # read timeout = how long we wait for the next message: no message for `timeout` s ends the watch
                with self._client.stream(
                    "POST", endpoint + "/v3/watch", content=json.dumps(body), timeout=httpx.Timeout(timeout, connect=self._timeout.connect)
                ) as resp:
                    if resp.status_code != 200:
                        raise _Unsent(f"{endpoint}: watch HTTP {resp.status_code}")
                    for line in resp.iter_lines():
                        if not line.strip():
                            continue
                        msg = json.loads(line)
                        if "error" in msg:
                            raise _Unsent(f"{endpoint}: watch {msg['error']}")
                        result = msg.get("result", {})
                        if result.get("compact_revision") and int(result["compact_revision"]) > last + 1:
                            raise WatchCompacted(since, int(result["compact_revision"]))
                        if result.get("canceled"):
                            raise _Unsent(f"{endpoint}: watch canceled: {result.get('cancel_reason', 'no reason given')}")
                        failures = 0
                        for ev in result.get("events") or []:
                            kv = ev["kv"]
                            rev = int(kv["mod_revision"])
                            if ev.get("type") == "DELETE":
                                yield WatchEvent("delete", self._unk(kv["key"]), None, rev)
                            else:
                                yield WatchEvent("put", self._unk(kv["key"]), json.loads(_unb64(kv["value"])) if kv.get("value") else {}, rev)
                            last = rev
                            got_any = True
            except httpx.ReadTimeout:
                return  # quiet for `timeout` seconds: done
            except (httpx.HTTPError, _Unsent) as exc:
                failures += 1
                if failures > len(self.endpoints):
                    raise StoreUnavailable(f"etcd watch: {exc}") from None
                log.info("etcd watch on %s broke (%s); resuming from revision %d on the next member", endpoint, exc, last)
                self._current = (self._current + 1) % len(self.endpoints)
                continue
            # The server closed the stream (a member shutting down): resume on the next one.
            failures = 0 if got_any else failures + 1
            if failures > len(self.endpoints):
                raise StoreUnavailable("etcd watch: every member closed the stream")
            self._current = (self._current + 1) % len(self.endpoints)

    def grant(self, ttl: float) -> Lease:
        # etcd leases are whole seconds, and never shorter than its minimum (~1.5 x election timeout).
        data = self._call("/v3/lease/grant", {"TTL": str(max(1, math.ceil(ttl))), "ID": "0"}, idempotent=False)
        return Lease(int(data["ID"]), float(data.get("TTL", ttl)))

    def refresh(self, lease: Lease) -> bool:
        # A keep-alive stuck for a large part of the TTL is worth nothing: give up on a member after
        # ttl/4 and ask the next one. Measured: with 2 s per call, a controller's 2 s lease did not
        # survive an etcd leader kill (the keep-alive hung on a follower still forwarding to the dead
        # leader); with ttl/4 it did, 3 times out of 3.
        per_call = min(self.timeout, max(0.25, lease.ttl / 4))
        data = self._call("/v3/lease/keepalive", {"ID": str(lease.id)}, timeout=httpx.Timeout(per_call, connect=self._timeout.connect))
        return int(data.get("result", {}).get("TTL", 0)) > 0

    def revoke(self, lease: Lease) -> None:
        try:
            self._call("/v3/lease/revoke", {"ID": str(lease.id)})
        except LeaseExpired:
            pass

    def ready(self) -> bool:
        """A linearizable read answered by some member: there is a leader and a quorum behind it.

        Answers within `ready_timeout` per member (a probe must not hang even while a member that just
        lost its peers still believes it leads: etcd notices only after up to two election timeouts).
        """
        try:
            self.revision(timeout=httpx.Timeout(self.ready_timeout, connect=self._timeout.connect))
            return True
        except StoreUnavailable:
            return False

    def close(self) -> None:
        self._client.close()
