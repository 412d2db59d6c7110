"""Boot storm: many concurrent clients against the agent's HTTP server vs nginx, same files.

Figures (higher is better, agent / nginx):
  - boot_storm_scripts: requests/s fetching per-host iPXE scripts with wrk (500 connections, 500
    hosts, a random MAC per request), target >= 0.5. Any socket error or non-2xx answer wrk
    counts fails the run; every host's script is fetched from both servers and compared with the
    rendered bytes first.
  - boot_storm_asset_50mb_downloads: complete downloads per second of one 50 MB asset, by this
    script's own client: `--downloaders` threads (default 16) share a fixed number of downloads
    per side and round (`--downloads`, default 64), each a new connection reading the WHOLE body.
    Every download's status (200) and byte count are checked, and the sha256 of every
    `--sample`-th (default 10th); any error (socket error, non-200, short body, digest mismatch)
    fails the run, naming the download. MB/s is of completed files only. Target >= 0.8.

The agent runs as in production (`python -m vaquero.agent`, uvicorn + uvloop + httptools, the
bare ASGI BootApp, scripts pre-rendered in memory, assets by path); nginx (1 worker, sendfile)
serves the same bytes from disk at the same paths. Each server is pinned to CPU 0 and the
clients (wrk, the download threads) to CPU 1 (LAB.md's method); everything runs on loopback in
a private network namespace. Both sides are equally warm (files in the page cache, one warm-up
pass per server before timing) and equally quiet (nginx `access_log off`, the agent at
`--log-level warning`; the agent's log is read back afterwards).

    python benchmarks/boot_storm.py [--duration 10] [--connections 500] [--hosts 500] [--downloads 64] [--downloaders 16]
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import itertools
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "controller"))

LUA = """
local paths = {}
for line in io.lines("%s") do paths[#paths + 1] = line end
math.randomseed(os.time())
request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end
"""

NGINX = """
worker_processes 1;
daemon off;
user root;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx.err warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  default_type application/octet-stream;
  client_body_temp_path {tmp}/nginx-body;
  proxy_temp_path {tmp}/nginx-proxy;
  fastcgi_temp_path {tmp}/nginx-fcgi;
  uwsgi_temp_path {tmp}/nginx-uwsgi;
  scgi_temp_path {tmp}/nginx-scgi;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    root {root};
    autoindex off;
  }}
}}
"""


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on port {port}")


def make_sot(tmp: Path, hosts: int, asset: Path) -> Path:
    from vaquero.lab.sot import prepare_sot

    initrd = tmp / "initrd.img"
    initrd.write_bytes(os.urandom(1 << 20))
    sot = prepare_sot(REPO / "inventories" / "lab", tmp / "sot", "lab-linux", asset, initrd)
    cluster = yaml.safe_load((sot / "clusters" / "lab.yaml").read_text())
    cluster["hosts"] = [
        {
            "name": f"storm{i}",
            "macs": [f"52:54:01:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"],
            "ips": {"prov": f"10.90.{1 + i // 250}.{1 + i % 250}"},
        }
        for i in range(hosts)
    ]
    cluster.pop("hooks", None)
    (sot / "clusters" / "lab.yaml").write_text(yaml.safe_dump(cluster, sort_keys=False))
    site = yaml.safe_load((sot / "sites" / "lab.yaml").read_text())
    site["networks"][0]["subnet"] = "10.90.0.0/16"
    (sot / "sites" / "lab.yaml").write_text(yaml.safe_dump(site, sort_keys=False))
    return sot


class RunFailed(Exception):
    """A result that is not complete and verified: the run must fail, saying what failed."""


def wrk(name: str, port: int, connections: int, duration: int, lua: Path) -> float:
    """Requests/s of wrk against `port`; any socket error or non-2xx/3xx answer fails the run."""
    cmd = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "30s", "-s", str(lua), f"http://127.0.0.1:{port}/"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    out = proc.stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if proc.returncode != 0 or m is None:
        raise RunFailed(f"wrk against {name} failed (exit status {proc.returncode}): {out.strip()} {proc.stderr.strip()}")
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if socket_errors and any(int(n) for n in socket_errors.groups()):
        raise RunFailed(f"wrk against {name}: {socket_errors.group(0)}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad and int(bad.group(1)):
        raise RunFailed(f"wrk against {name}: {bad.group(0)}")
    return float(m.group(1))


def fetch(port: int, path: str) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RunFailed(f"GET {path} on port {port}: HTTP {resp.status}")
        return body
    finally:
        conn.close()


def download_all(name: str, port: int, path: str, size: int, digest: str, downloads: int, downloaders: int, sample: int) -> float:
    """Wall seconds for `downloads` complete, checked downloads of `path` by `downloaders` threads."""
    numbers = itertools.count()  # next() on a count is atomic under the GIL: each download is taken once
    errors: list[str] = []
    done: list[int] = []

    def downloader() -> None:
        view = memoryview(bytearray(1 << 20))
        while not errors:
            i = next(numbers)
            if i >= downloads:
                return
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            try:
                conn.request("GET", path)
                resp = conn.getresponse()
                if resp.status != 200:
                    raise RunFailed(f"HTTP {resp.status}")
                sha = hashlib.sha256() if i % sample == 0 else None
                got = 0
                while n := resp.readinto(view):
                    got += n
                    if sha is not None:
                        sha.update(view[:n])
                if got != size:
                    raise RunFailed(f"short body: {got} of {size} bytes")
                if sha is not None and sha.hexdigest() != digest:
                    raise RunFailed(f"sha256 {sha.hexdigest()}, expected {digest}")
                done.append(i)
            except (RunFailed, OSError, http.client.HTTPException) as exc:
                errors.append(f"{name} download {i} of {path}: {type(exc).__name__}: {exc}")
            finally:
                conn.close()

    threads = [threading.Thread(target=downloader, name=f"download-{k}") for k in range(downloaders)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - t0
    if errors:
        raise RunFailed("; ".join(errors[:5]) + (f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""))
    if sorted(done) != list(range(downloads)):
        raise RunFailed(f"{name}: {len(done)} of {downloads} downloads completed")
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=500)
    ap.add_argument("--hosts", type=int, default=500)
    ap.add_argument("--asset-mb", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per figure; medians are reported")
    ap.add_argument("--downloads", type=int, default=64, help="complete asset downloads per side and round")
    ap.add_argument("--downloaders", type=int, default=16, help="concurrent asset downloaders (threads, one connection per download)")
    ap.add_argument("--sample", type=int, default=10, help="check the sha256 of every Nth download (all byte counts are checked)")
    args = ap.parse_args()
    for tool in ("nginx", "wrk", "taskset"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"{tool} is not installed (run scripts/setup.sh)")
    if os.environ.get("VQ_BENCH_NETNS") != "1" and os.geteuid() == 0 and shutil.which("unshare"):
        env = {**os.environ, "VQ_BENCH_NETNS": "1"}
        return subprocess.call(["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', sys.executable, *sys.argv], env=env)

    from vaquero.render import render_site
    from vaquero.sot import load

    tmp = Path(tempfile.mkdtemp(prefix="vq-bench-storm-"))
    tmp.chmod(0o755)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        asset = tmp / "vmlinuz"
        with open(asset, "wb") as fh:
            for _ in range(args.asset_mb):
                fh.write(os.urandom(1 << 20))
        sot = make_sot(tmp, args.hosts, asset)
        bundle = render_site(load(sot))
        # nginx's tree: the same bytes at the same paths.
        www = tmp / "www"
        (www / "v1" / "boot" / "ipxe").mkdir(parents=True)
        (www / "assets" / "lab-linux").mkdir(parents=True)
        paths = []
        for hb in bundle.hosts.values():
            key = hb.macs[0].replace(":", "-")
            (www / "v1" / "boot" / "ipxe" / key).write_text(hb.localboot)
            paths.append(f"/v1/boot/ipxe/{key}")
        os.link(asset, www / "assets" / "lab-linux" / "vmlinuz")
        (tmp / "paths.txt").write_text("\n".join(paths) + "\n")
        lua = tmp / "scripts.lua"
        lua.write_text(LUA % (tmp / "paths.txt"))

        agent_port, nginx_port = 18080, 18081
        (tmp / "nginx.conf").write_text(NGINX.format(tmp=tmp, port=nginx_port, root=www))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        procs.append(subprocess.Popen(["taskset", "-c", "0", nginx, "-c", str(tmp / "nginx.conf")], stderr=subprocess.DEVNULL))
        agent_cmd = [
            "taskset", "-c", "0", sys.executable, "-m", "vaquero.agent", "--sot", str(sot), "--listen", "127.0.0.1",
            "--http-port", str(agent_port), "--tftp-port", "0", "--no-dhcp", "--asset-root", str(tmp / "assets"),
            "--state-dir", str(tmp / "state"), "--log-level", "warning",
        ]  # fmt: skip
        agent_log = tmp / "agent.log"
        with open(agent_log, "wb") as log:
            procs.append(subprocess.Popen(agent_cmd, env={**os.environ, "PYTHONPATH": str(REPO / "controller")}, stderr=log))
        wait_port(nginx_port)
        wait_port(agent_port, 60)
        # The clients run on CPU 1 (threads started from here inherit it), the servers on CPU 0.
        os.sched_setaffinity(0, {1})
        servers = (("nginx", nginx_port), ("vaquero", agent_port))
        # Same bytes, for every host's script and the asset (this is also the asset's warm-up pass).
        asset_path = "/assets/lab-linux/vmlinuz"
        asset_size = asset.stat().st_size
        asset_digest = hashlib.sha256(asset.read_bytes()).hexdigest()
        for name, port in servers:
            for hb in bundle.hosts.values():
                path = f"/v1/boot/ipxe/{hb.macs[0].replace(':', '-')}"
                if fetch(port, path) != hb.localboot.encode():
                    raise RunFailed(f"{name} serves other bytes than the rendered script at {path}")
            body = fetch(port, asset_path)
            if len(body) != asset_size or hashlib.sha256(body).hexdigest() != asset_digest:
                raise RunFailed(f"{name} serves other bytes than the asset at {asset_path}")
            del body

        scripts: dict[str, list[float]] = {"nginx": [], "vaquero": []}
        asset_s: dict[str, list[float]] = {"nginx": [], "vaquero": []}
        for name, port in servers:
            wrk(name, port, args.connections, 2, lua)  # warm up
        # Rounds alternate between the servers so that load from elsewhere hits both alike.
        for _ in range(args.rounds):
            for name, port in servers:
                scripts[name].append(wrk(name, port, args.connections, args.duration, lua))
            for name, port in servers:
                took = download_all(name, port, asset_path, asset_size, asset_digest, args.downloads, args.downloaders, args.sample)
                asset_s[name].append(took)
        agent_lines = agent_log.read_bytes().count(b"\n")
        if agent_lines > 20:  # a handful of start-up warnings at most: nothing per request
            raise RunFailed(f"the agent logged {agent_lines} lines at --log-level warning: not as quiet as nginx's access_log off")
        mb = args.downloads * asset_size / 1e6
        print(
            f"# scripts: wrk, {args.connections} connections, {args.duration}s x {args.rounds} rounds, {args.hosts} per-host scripts; "
            f"asset: {args.downloads} complete downloads of {asset_size} bytes per side and round by {args.downloaders} threads "
            f"(byte count of each checked, sha256 of every {args.sample}th); servers on CPU 0, clients on CPU 1"
        )
        print("# caches: both warm (files in the page cache, the scripts in the agent's memory; a warm-up pass per server before timing)")
        print(f"# logging: both quiet (nginx access_log off; the agent at --log-level warning wrote {agent_lines} line(s))")
        for name in ("nginx", "vaquero"):
            print(f"# {name:8s} scripts req/s: {' '.join(f'{r:.0f}' for r in scripts[name])}")
            rates = " ".join(f"{args.downloads / t:.2f}/s ({mb / t:.0f} MB/s)" for t in asset_s[name])
            print(f"# {name:8s} asset downloads, 0 errors: {rates}")
        vs, ns = statistics.median(scripts["vaquero"]), statistics.median(scripts["nginx"])
        va, na = (statistics.median(args.downloads / t for t in asset_s[k]) for k in ("vaquero", "nginx"))
        print(f"boot_storm_scripts ratio {vs / ns:.2f} (vaquero {vs:.0f} req/s, nginx {ns:.0f} req/s, medians, 0 errors; target >= 0.5)")
        print(
            f"boot_storm_asset_{args.asset_mb}mb_downloads ratio {va / na:.2f} (vaquero {va:.2f} downloads/s = {va * asset_size / 1e6:.0f} MB/s, "
            f"nginx {na:.2f} downloads/s = {na * asset_size / 1e6:.0f} MB/s of complete, checked files, medians; target >= 0.8)"
        )
    except RunFailed as exc:
        print(f"boot_storm: FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
