"""Fleet boot storm: 1,000 simulated hosts boot at once against one agent vs dnsmasq + nginx.

Every host (benchmarks/fleet_client.py, one asyncio process) takes a DHCP lease, fetches the iPXE
binary the ACK names over TFTP, then its own iPXE script over HTTP by MAC, then the kernel and the
initrd that script names. The figure is the time from the first DISCOVER until every host has all
its boot files, the agent's over the peer's (lower is better, target <= 1.2).

Sides, each in a network namespace of its own (a bridge at 10.90.0.1/16, the clients on a veth at
10.90.255.250; the two sides never share a wire):
  - vaquero: the agent as in production (`python -m vaquero.agent`): DHCP through the dnsmasq it
    configures and supervises, its own TFTP server, its HTTP server; every host armed for install
    (`--install`), so each gets its own install script naming the kernel and initrd.
  - peer: dnsmasq with the agent's own rendered DHCP config and reservations (a static dhcp-host
    per MAC, the same boot rules) plus its TFTP (`tftp-max` = hosts, as one would run it for this
    fleet), and nginx (1 worker, sendfile) serving the very script bytes the agent serves (fetched
    from it before timing) at the same paths, and the same kernel and initrd files.
Both sides' processes are pinned to CPU 0, the client to CPU 1.

Checked for every host on both sides, else the run fails naming the host: the lease is the
host's reservation (in the site's subnet), the boot file is undionly.kpxe from 10.90.0.1, the TFTP
bytes are the binary's (sha256), the script is the host's own (sha256 of the bytes rendered for it),
the kernel and initrd are complete (byte count) and, on every `--sample`-th host, their sha256.

Logging, the same on both sides: each DHCP exchange and each TFTP transfer is logged to a file
(the peer's dnsmasq to its log file; the agent's dnsmasq lines and its TFTP lines through the
agent's JSON log at INFO), no HTTP request is (nginx `access_log off`, the agent without
`--access-log`); the logs are read back and must hold a line per lease and per transfer.
Warm/cold: the servers run through all rounds and serve the files from memory or the page cache;
each side served every script once before the first round (the copy for nginx, a read of nginx's
copies); round 1 starts with empty lease files, later rounds find each host's lease on record
(alike on both sides). Rounds alternate sides; the medians are compared.

    sudo .venv/bin/python benchmarks/fleet_storm.py [--hosts 1000] [--rounds 3] [--kernel-mb 4] [--initrd-mb 8] [--blksize 1432] [--sample 10]
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "controller"))

SERVER, CLIENT, PORT = "10.90.0.1", "10.90.255.250", 8080
BOOT_FILE = "undionly.kpxe"

NGINX = """
worker_processes 1;
daemon off;
user root;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx.err warn;
worker_rlimit_nofile 20000;
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
    listen {server}:{port} backlog=4096;
    root {root};
    autoindex off;
  }}
}}
"""

# Run inside a namespace: GET every host's script, write it where nginx serves the same path.
COPY_SCRIPTS = """
import http.client, json, sys
from pathlib import Path
keys, www = json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2])
conn = http.client.HTTPConnection(sys.argv[3], int(sys.argv[4]), timeout=30)
for key in keys:
    conn.request("GET", f"/v1/boot/ipxe/{key}")
    resp = conn.getresponse()
    body = resp.read()
    if resp.status != 200:
        raise SystemExit(f"GET /v1/boot/ipxe/{key}: HTTP {resp.status}")
    if www.name == "check":
        print(key, body.hex())
    else:
        (www / key).write_bytes(body)
"""


class RunFailed(Exception):
    """A result that is not complete and verified: the run must fail, saying what failed."""


def mac(i: int) -> str:
    return f"52:54:02:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"


def make_sot(tmp: Path, hosts: int, kernel: Path, initrd: Path) -> Path:
    from vaquero.lab.sot import prepare_sot

    sot = prepare_sot(REPO / "inventories" / "lab", tmp / "sot", "lab-linux", kernel, initrd)
    cluster = yaml.safe_load((sot / "clusters" / "lab.yaml").read_text())
    cluster["hosts"] = [{"name": f"storm{i}", "macs": [mac(i)], "ips": {"prov": f"10.90.{1 + i // 250}.{1 + i % 250}"}} for i in range(hosts)]
    cluster.pop("hooks", None)
    (sot / "clusters" / "lab.yaml").write_text(yaml.safe_dump(cluster, sort_keys=False))
    site = yaml.safe_load((sot / "sites" / "lab.yaml").read_text())
    site["networks"][0]["subnet"] = "10.90.0.0/16"
    (sot / "sites" / "lab.yaml").write_text(yaml.safe_dump(site, sort_keys=False))
    return sot


def random_file(path: Path, mb: int) -> Path:
    with open(path, "wb") as fh:
        for _ in range(mb):
            fh.write(os.urandom(1 << 20))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def peak_rss_mb(pid: int) -> float:
    m = re.search(r"^VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    if m is None:
        raise RunFailed(f"no VmHWM for pid {pid}")
    return int(m.group(1)) / 1024


class RssSampler(threading.Thread):
    """Peaks of a process's anonymous and file-backed resident memory, read from /proc every 50 ms.

    VmHWM alone cannot tell them apart: the agent sends assets from mmaps of page-cache pages,
    which count in its RSS once per mapping although they are the shared page cache."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = {"RssAnon": 0, "RssFile": 0, "VmRSS": 0}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.05):
            try:
                text = Path(f"/proc/{self.pid}/status").read_text()
            except FileNotFoundError:
                return
            for key in self.peak:
                m = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
                if m is not None:
                    self.peak[key] = max(self.peak[key], int(m.group(1)))


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def verify(
    side: str, report: dict[str, Any], expect: dict[str, dict[str, Any]], files: dict[str, tuple[int, str]], subnet: ipaddress.IPv4Network, tftp_sha: str
) -> None:
    """Every host got all it should, else RunFailed naming the hosts."""
    bad: list[str] = []
    for name, want in expect.items():
        got = report["hosts"].get(name)
        why = None
        if got is None:
            why = "no report"
        elif "error" in got:
            why = got["error"]
        elif got["ip"] != want["ip"] or ipaddress.IPv4Address(got["ip"]) not in subnet:
            why = f"lease {got['ip']}, reserved {want['ip']}"
        elif got["file"] != BOOT_FILE or got["siaddr"] != SERVER:
            why = f"boot file {got['file']!r} from {got['siaddr']}, expected {BOOT_FILE} from {SERVER}"
        elif got["tftp_sha256"] != tftp_sha:
            why = f"TFTP {got['file']}: {got['tftp_bytes']} bytes with sha256 {got['tftp_sha256']}, not the binary's"
        elif got["script_sha256"] != want["script_sha256"]:
            why = "the script is not the one rendered for this host"
        elif sorted(f["path"] for f in got["files"]) != sorted(files):
            why = f"fetched {[f['path'] for f in got['files']]}, the script names {sorted(files)}"
        else:
            for f in got["files"]:
                size, digest = files[f["path"]]
                if f["bytes"] != size or (f["sha256"] is not None and f["sha256"] != digest):
                    why = f"{f['path']}: {f['bytes']} bytes, sha256 {f['sha256']} (expected {size}, {digest})"
        if why is not None:
            bad.append(f"{name}: {why}")
    if bad:
        raise RunFailed(f"{side}: {len(bad)} of {len(expect)} hosts failed: " + "; ".join(bad[:5]) + (" ..." if len(bad) > 5 else ""))


def phases(report: dict[str, Any]) -> str:
    """When the last host reached each step (seconds since the first DISCOVER)."""
    t = [h["t"] for h in report["hosts"].values()]
    return ", ".join(f"{k} {max(x[k] for x in t):.2f}" for k in ("lease", "tftp", "script", "done"))


def after_lease(report: dict[str, Any]) -> list[float]:
    """Each host's seconds from its lease to its last boot file (TFTP and HTTP under the storm)."""
    return sorted(h["t"]["done"] - h["t"]["lease"] for h in report["hosts"].values())


def p95(values: list[float]) -> float:
    return values[min(len(values) - 1, int(0.95 * len(values)))]


def udp_drops(net: Any, ns: str | None = None) -> int:
    """UDP datagrams a namespace dropped for a full socket receive buffer (RcvbufErrors)."""
    lines = [ln.split() for ln in net.run(["cat", "/proc/net/snmp"], ns=ns).stdout.splitlines() if ln.startswith("Udp:")]
    return int(lines[1][lines[0].index("RcvbufErrors")])


def count(path: Path, needle: str) -> int:
    return sum(1 for line in path.read_text(errors="replace").splitlines() if needle in line)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3, help="storms per side, alternating; medians are compared")
    ap.add_argument("--kernel-mb", type=int, default=4)
    ap.add_argument("--initrd-mb", type=int, default=8)
    ap.add_argument("--blksize", type=int, default=1432, help="TFTP block size the clients ask for (iPXE's)")
    ap.add_argument("--sample", type=int, default=10, help="check the sha256 of kernel and initrd on every Nth host (all byte counts are checked)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs, reports) for a post-mortem")
    args = ap.parse_args()
    if not 1 <= args.hosts <= 60000:
        raise SystemExit("--hosts: 1 to 60000")
    if os.geteuid() != 0:
        raise SystemExit("fleet_storm needs root (network namespaces, DHCP and TFTP ports)")
    for tool in ("nginx", "dnsmasq", "taskset", "ip"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (run scripts/setup.sh)")

    from vaquero.lab.netns import LabNetwork

    tmp = Path(tempfile.mkdtemp(prefix="vq-bench-fleet-"))
    tmp.chmod(0o755)  # dnsmasq drops to nobody and reads its TFTP root and hosts file
    nets = {side: LabNetwork(address=f"{SERVER}/16", ipv6=None, prefix=f"vqfs{side[0]}") for side in ("vaquero", "peer")}
    env = {**os.environ, "PYTHONPATH": str(REPO / "controller")}
    try:
        for net in nets.values():
            net.create()
        clients = {side: net.add_peer(f"{CLIENT}/16") for side, net in nets.items()}
        kernel = random_file(tmp / "vmlinuz", args.kernel_mb)
        initrd = random_file(tmp / "initrd.img", args.initrd_mb)
        sot = make_sot(tmp, args.hosts, kernel, initrd)
        tftp_root = tmp / "tftp"
        tftp_root.mkdir()
        shutil.copyfile(f"/usr/lib/ipxe/{BOOT_FILE}", tftp_root / BOOT_FILE)
        tftp_sha = sha256(tftp_root / BOOT_FILE)
        names = [f"storm{i}" for i in range(args.hosts)]

        # -- vaquero --
        state = tmp / "agent-state"
        agent_log = tmp / "agent.log"
        agent_cmd = [
            "taskset", "-c", "0", sys.executable, "-m", "vaquero.agent", "--sot", str(sot), "--listen", SERVER,
            "--http-port", str(PORT), "--tftp-port", "69", "--tftp-root", str(tftp_root), "--asset-root", str(tmp / "assets"),
            "--state-dir", str(state), "--log-level", "info", *(a for n in names for a in ("--install", n)),
        ]  # fmt: skip
        agent = nets["vaquero"].popen(agent_cmd, log_file=agent_log, env=env)
        nets["vaquero"].wait_port(SERVER, PORT, timeout=300)

        # -- peer: the agent's own DHCP config and reservations, plus TFTP; nginx with the agent's scripts --
        peer = tmp / "peer"
        (peer / "www" / "v1" / "boot" / "ipxe").mkdir(parents=True)
        keys = [mac(i).replace(":", "-") for i in range(args.hosts)]
        (tmp / "keys.json").write_text(json.dumps(keys))
        copy = nets["vaquero"].run(
            [sys.executable, "-c", COPY_SCRIPTS, str(tmp / "keys.json"), str(peer / "www" / "v1" / "boot" / "ipxe"), SERVER, str(PORT)], timeout=300
        )
        if copy.returncode != 0:
            raise RunFailed(f"copying the agent's scripts: {copy.stderr.strip()}")
        hosts_file = peer / "dnsmasq.hosts"
        shutil.copyfile(state / "dnsmasq" / "dnsmasq.hosts", hosts_file)
        conf = (state / "dnsmasq" / "dnsmasq.conf").read_text()
        conf = conf.replace(f"dhcp-hostsfile={state / 'dnsmasq' / 'dnsmasq.hosts'}", f"dhcp-hostsfile={hosts_file}")
        conf += f"\n# the peer's TFTP\nenable-tftp\ntftp-root={tftp_root}\ntftp-max={max(50, args.hosts)}\n"
        (peer / "dnsmasq.conf").write_text(conf)
        peer_log = peer / "dnsmasq.log"
        dnsmasq_cmd = [
            "taskset", "-c", "0", "dnsmasq", "-k", "-C", str(peer / "dnsmasq.conf"), f"--log-facility={peer_log}",
            f"--dhcp-leasefile={peer / 'dnsmasq.leases'}", f"--pid-file={peer / 'dnsmasq.pid'}",
        ]  # fmt: skip
        peer_dnsmasq = nets["peer"].popen(dnsmasq_cmd, log_file=peer / "dnsmasq.out")
        scripts: dict[str, str] = {}
        files: dict[str, tuple[int, str]] = {}
        www = peer / "www"
        for key, name in zip(keys, names, strict=True):
            body = (www / "v1" / "boot" / "ipxe" / key).read_bytes()
            if f" vaquero.host={name} ".encode() not in body:  # the host's own install script, not another's or a localboot
                raise RunFailed(f"the agent's script for {name} ({key}) does not install {name}")
            scripts[name] = hashlib.sha256(body).hexdigest()
            for line in body.decode().splitlines():
                words = line.split()
                if words and words[0] in ("kernel", "initrd"):
                    path = "/" + next(w for w in words if w.startswith("http://")).split("/", 3)[3]
                    src = {"vmlinuz": kernel, "initrd.img": initrd}[path.rsplit("/", 1)[1]]
                    if path not in files:
                        (www / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
                        os.link(src, www / path.lstrip("/"))
                        files[path] = (src.stat().st_size, sha256(src))
        if len(files) != 2:
            raise RunFailed(f"the scripts name {sorted(files)}, expected one kernel and one initrd")
        (peer / "nginx.conf").write_text(NGINX.format(tmp=peer, server=SERVER, port=PORT, root=www))
        nginx = nets["peer"].popen(["taskset", "-c", "0", shutil.which("nginx") or "nginx", "-c", str(peer / "nginx.conf")], log_file=peer / "nginx.out")
        nets["peer"].wait_port(SERVER, PORT)
        check = peer / "check"
        check.mkdir()
        served = nets["peer"].run([sys.executable, "-c", COPY_SCRIPTS, str(tmp / "keys.json"), str(check), SERVER, str(PORT)], timeout=300)
        if served.returncode != 0:
            raise RunFailed(f"reading nginx's scripts: {served.stderr.strip()}")
        for line, name in zip(served.stdout.splitlines(), names, strict=True):
            if hashlib.sha256(bytes.fromhex(line.split()[1])).hexdigest() != scripts[name]:
                raise RunFailed(f"nginx serves other bytes than the agent for {name}'s script")
        if peer_dnsmasq.poll() is not None:
            raise RunFailed(f"the peer's dnsmasq exited: {(peer / 'dnsmasq.out').read_text(errors='replace').strip()}")
        for f in (kernel, initrd, tftp_root / BOOT_FILE):
            f.read_bytes()  # page cache: both sides read the same files

        expect = {name: {"ip": f"10.90.{1 + i // 250}.{1 + i % 250}", "script_sha256": scripts[name]} for i, name in enumerate(names)}
        subnet = ipaddress.IPv4Network("10.90.0.0/16")
        spec = {
            "iface": "eth0",
            "base_url": f"http://{SERVER}:{PORT}",
            "blksize": args.blksize,
            "sample": args.sample,
            "hosts": [{"name": n, "mac": mac(i)} for i, n in enumerate(names)],
        }
        times: dict[str, list[float]] = {"vaquero": [], "peer": []}
        files_p95: dict[str, list[float]] = {"vaquero": [], "peer": []}
        rss_start = peak_rss_mb(agent.pid)
        servers = {"agent": [agent.pid], "agent's dnsmasq": children(agent.pid), "peer dnsmasq": [peer_dnsmasq.pid], "nginx": [nginx.pid, *children(nginx.pid)]}
        cpu0 = {k: sum(cpu_seconds(p) for p in pids) for k, pids in servers.items()}
        sampler = RssSampler(agent.pid)
        sampler.start()
        detail: dict[str, list[str]] = {"vaquero": [], "peer": []}
        for r in range(args.rounds):
            order = ("vaquero", "peer") if r % 2 == 0 else ("peer", "vaquero")
            for side in order:
                spec["xid_base"] = 0x10000000 * (1 + r) + (0x8000000 if side == "peer" else 0)
                (tmp / "spec.json").write_text(json.dumps(spec))
                out = tmp / f"report-{side}-{r}.json"
                cmd = ["taskset", "-c", "1", sys.executable, str(REPO / "benchmarks" / "fleet_client.py"), str(tmp / "spec.json"), str(out)]
                drops0, client_drops0 = udp_drops(nets[side]), udp_drops(nets[side], clients[side])
                res = nets[side].run(cmd, ns=clients[side], timeout=1800)
                if res.returncode != 0:
                    raise RunFailed(f"{side} round {r + 1}: the client failed: {res.stderr.strip()[-2000:]}")
                report = json.loads(out.read_text())
                verify(side, report, expect, files, subnet, tftp_sha)
                turned = sum(h["tftp_turned_away"] for h in report["hosts"].values())
                retried = sum(h["dhcp_tries"] > 1 for h in report["hosts"].values())
                times[side].append(report["seconds"])
                files_p95[side].append(p95(after_lease(report)))
                drops, client_drops = udp_drops(nets[side]) - drops0, udp_drops(nets[side], clients[side]) - client_drops0
                detail[side].append(
                    f"{report['seconds']:.2f} s (last host by step: {phases(report)}; lease to last file p95 {files_p95[side][-1]:.2f} s; "
                    f"{retried} hosts retransmitted DHCP, TFTP turned away {turned} times; UDP datagrams dropped for a full socket buffer: "
                    f"{drops} at the servers, {client_drops} at the client)"
                )
        for side, procs in (("vaquero", [agent]), ("peer", [peer_dnsmasq, nginx])):
            if any(p.poll() is not None for p in procs):
                raise RunFailed(f"a {side} server process exited during the run")
        cpu = {k: sum(cpu_seconds(p) for p in pids) - cpu0[k] for k, pids in servers.items()}
        sampler.stop.set()
        sampler.join()
        agent_children = children(agent.pid)
        rss = peak_rss_mb(agent.pid)
        child_rss = sum(peak_rss_mb(c) for c in agent_children)
        peer_rss = peak_rss_mb(peer_dnsmasq.pid) + sum(peak_rss_mb(c) for c in [nginx.pid, *children(nginx.pid)])
        # The logging must be what the output says, on both sides.
        leases, transfers = args.hosts * args.rounds, args.hosts * args.rounds
        logged = {
            "vaquero": (count(agent_log, "DHCPACK"), count(agent_log, "tftp sending ")),
            "peer": (count(peer_log, "DHCPACK"), count(peer_log, " sent ")),
        }
        for side, (acks, sent) in logged.items():
            if acks < leases or sent < transfers:
                raise RunFailed(f"{side} logged {acks} DHCPACK and {sent} TFTP lines for {leases} leases and {transfers} transfers: logging not as stated")
        size = {p.rsplit("/", 1)[1]: s for p, (s, _) in files.items()}
        print(
            f"# {args.hosts} hosts at once, {args.rounds} rounds per side (alternating): DHCP (DISCOVER..ACK, broadcast), "
            f"TFTP {BOOT_FILE} ({(tftp_root / BOOT_FILE).stat().st_size} bytes, blksize {args.blksize}), HTTP script + vmlinuz "
            f"({size['vmlinuz']} bytes) + initrd.img ({size['initrd.img']} bytes) on one keep-alive connection per host"
        )
        print(
            f"# checked on every host: lease = its reservation, boot file, TFTP sha256, its own script's sha256, kernel/initrd byte counts; "
            f"kernel/initrd sha256 on every {args.sample}th host; servers on CPU 0, the client (one asyncio process) on CPU 1"
        )
        print(
            "# caches: warm (servers up through all rounds, every script served once before round 1, files in memory or page cache); round 1: empty lease files"
        )
        print(
            f"# logging: both log every DHCP exchange and TFTP transfer, no HTTP request (agent {logged['vaquero'][0]} DHCPACK + {logged['vaquero'][1]} TFTP "
            "lines "
            f"in its JSON log at INFO; peer dnsmasq {logged['peer'][0]} + {logged['peer'][1]}; nginx access_log off, agent without --access-log)"
        )
        for side in ("vaquero", "peer"):
            for r, d in enumerate(detail[side], 1):
                print(f"# {side:7s} round {r}: {d}")
        pk = {k: v / 1024 for k, v in sampler.peak.items()}
        print(
            f"# peak RSS (VmHWM from /proc): agent process {rss:.0f} MB ({rss_start:.0f} MB before round 1; sampled every 50 ms during the storms: "
            f"anonymous {pk['RssAnon']:.0f} MB, file-backed {pk['RssFile']:.0f} MB, the asset mmaps), its dnsmasq {child_rss:.0f} MB; "
            f"peer dnsmasq + nginx {peer_rss:.0f} MB"
        )
        print("# server CPU over all rounds (user + system, from /proc): " + ", ".join(f"{k} {v:.1f} s" for k, v in cpu.items()))
        v, p = statistics.median(times["vaquero"]), statistics.median(times["peer"])
        print(
            f"fleet_storm_time ratio {v / p:.2f} (vaquero {v:.2f} s, peer dnsmasq+nginx {p:.2f} s, medians of {args.rounds} rounds; "
            f"hosts {args.hosts}, failures=0; agent peak RSS {rss:.0f} MB; target <= 1.2)"
        )
        vf, pf = statistics.median(files_p95["vaquero"]), statistics.median(files_p95["peer"])
        print(f"fleet_storm_files_after_lease_p95 ratio {vf / pf:.2f} (vaquero {vf:.2f} s, peer {pf:.2f} s, p95 over hosts of lease -> last file, medians)")
    except RunFailed as exc:
        print(f"fleet_storm: FAILED: {exc}", file=sys.stderr)
        # The servers' own complaints, for the post-mortem (the folder goes unless --keep).
        for log_path in (tmp / "peer" / "nginx.err", tmp / "agent.log"):
            if log_path.exists():
                bad = [ln for ln in log_path.read_text(errors="replace").splitlines() if re.search(r"error|warn|crit", ln, re.I)]
                for line in bad[-5:]:
                    print(f"# {log_path.name}: {line[:400]}", file=sys.stderr)
        return 1
    finally:
        for net in nets.values():
            net.close()
        if args.keep:
            print(f"# kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
