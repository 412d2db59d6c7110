"""Boot storm: 500 concurrent clients against the agent's HTTP server vs nginx, same files.

Figures (higher is better, agent / nginx):
  - boot_storm_scripts: requests/s fetching per-host iPXE scripts (500 hosts, a random MAC per
    request), target >= 0.5
  - boot_storm_asset_50mb: bytes/s fetching one 50 MB asset, target >= 0.8

The agent runs as in production (`python -m vaquero.agent`, uvicorn + uvloop + httptools, the
bare ASGI BootApp, scripts pre-rendered in memory, assets by path); nginx (1 worker, sendfile)
serves the same bytes from disk at the same paths. Each server is pinned to CPU 0 and wrk to
CPU 1 (LAB.md's method); everything runs on loopback in a private network namespace.

    python benchmarks/boot_storm.py [--duration 10] [--connections 500] [--hosts 500]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
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


def wrk(port: int, connections: int, duration: int, lua: Path | None = None, path: str = "/") -> tuple[float, float, str]:
    cmd = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "30s"]
    if lua is not None:
        cmd += ["-s", str(lua)]
    cmd.append(f"http://127.0.0.1:{port}{path}")
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"Transfer/sec:\s+([\d.]+)([KMG]?B)", out)
    unit = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}[m.group(2)]  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: .*", out)
    return rps, float(m.group(1)) * unit, errors.group(0) if errors else ""  # type: ignore[union-attr]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=500)
    ap.add_argument("--hosts", type=int, default=500)
    ap.add_argument("--asset-mb", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per figure; medians are reported")
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
        procs.append(subprocess.Popen(agent_cmd, env={**os.environ, "PYTHONPATH": str(REPO / "controller")}))
        wait_port(nginx_port)
        wait_port(agent_port, 60)
        # same bytes?
        for p in (paths[0], "/assets/lab-linux/vmlinuz"):
            a = subprocess.run(["curl", "-s", f"http://127.0.0.1:{agent_port}{p}"], capture_output=True).stdout
            n = subprocess.run(["curl", "-s", f"http://127.0.0.1:{nginx_port}{p}"], capture_output=True).stdout
            if a != n or not a:
                raise SystemExit(f"the agent and nginx serve different bytes for {p}")

        runs: dict[tuple[str, str], list[tuple[float, float, str]]] = {}
        servers = (("nginx", nginx_port), ("vaquero", agent_port))
        for _name, port in servers:
            wrk(port, args.connections, 2, lua)  # warm up
        # Rounds alternate between the servers so that load from elsewhere hits both alike.
        for _ in range(args.rounds):
            for name, port in servers:
                runs.setdefault((name, "scripts"), []).append(wrk(port, args.connections, args.duration, lua))
            for name, port in servers:
                runs.setdefault((name, "asset"), []).append(wrk(port, args.connections, args.duration, path="/assets/lab-linux/vmlinuz"))
        print(
            f"# {args.connections} connections, {args.duration}s x {args.rounds} rounds, {args.hosts} per-host scripts, "
            f"{args.asset_mb} MB asset; servers on CPU 0, wrk on CPU 1"
        )
        res = {}
        for (name, kind), rs in runs.items():
            for rps, bps, err in rs:
                print(f"# {name:8s} {kind:8s} {rps:12.1f} req/s {bps / 1e6:10.1f} MB/s {err}")
            res[(name, kind)] = (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs), "")
        s_ratio = res[("vaquero", "scripts")][0] / res[("nginx", "scripts")][0]
        a_ratio = res[("vaquero", "asset")][1] / res[("nginx", "asset")][1]
        vs, ns = res[("vaquero", "scripts")][0], res[("nginx", "scripts")][0]
        va, na = res[("vaquero", "asset")][1] / 1e6, res[("nginx", "asset")][1] / 1e6
        print(f"boot_storm_scripts ratio {s_ratio:.2f} (vaquero {vs:.0f} req/s, nginx {ns:.0f} req/s, medians; target >= 0.5)")
        print(f"boot_storm_asset_50mb ratio {a_ratio:.2f} (vaquero {va:.0f} MB/s, nginx {na:.0f} MB/s, medians; target >= 0.8)")
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
