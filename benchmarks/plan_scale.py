#!/usr/bin/env python3
"""validate + plan of a 10,000-host SoT vs a bare YAML parse of the same files, in one run.

Generates two revisions of a SoT (5 sites, 200 clusters, 10,000 hosts; the second changes one
host in every cluster), then times:
  baseline: yaml.load_all with the C loader of every document file of both revisions;
  vaquero:  parse the old revision, load + validate the new one, plan, render the human dump.
Prints the ratio (target <= 3x) and the peak memory of a process doing the vaquero part
(target <= 500 MB). Usage: benchmarks/plan_scale.py [--hosts N] [--clusters N] [--sites N] [--repeat N]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

try:
    LOADER = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    LOADER = yaml.SafeLoader


def generate(root: Path, sites: int, clusters: int, hosts: int, changed: bool) -> None:
    for d in ("sites", "profiles", "clusters", "hooks"):
        (root / d).mkdir(parents=True, exist_ok=True)
    per_site = clusters // sites
    per_cluster = hosts // clusters
    for s in range(sites):
        site = {
            "apiVersion": "vaquero/v1",
            "kind": "Site",
            "name": f"site{s}",
            "agents": [{"name": f"agent{s}", "url": f"https://agent{s}.example.net:8443"}],
            "networks": [
                {
                    "name": "prov",
                    "subnet": f"10.{s}.0.0/16",
                    "gateway": f"10.{s}.0.1",
                    "dhcp": {"mode": "server", "range": [f"10.{s}.255.1", f"10.{s}.255.250"]},
                    "dns": [f"10.{s}.0.2"],
                    "ntp": [f"10.{s}.0.3"],
                    "domain": f"site{s}.example.net",
                }
            ],
            "credentials": {"bmc": {"username": "admin", "password": {"env": f"BMC_PASSWORD_{s}"}}},
        }
        (root / "sites" / f"site{s}.yaml").write_text(yaml.safe_dump(site, sort_keys=False))
    profile = {
        "apiVersion": "vaquero/v1",
        "kind": "Profile",
        "name": "linux",
        "version": "1",
        "kernel": {"url": "https://mirror.example.net/vmlinuz", "sha256": "a" * 64},
        "initrd": [{"url": "https://mirror.example.net/initrd", "sha256": "b" * 64}],
        "cmdline": "console=ttyS0 hostname={{ host.name }} callback={{ urls.callback }}",
    }
    (root / "profiles" / "linux.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    hook = {"apiVersion": "vaquero/v1", "kind": "Hook", "name": "ssh", "type": "wait_for_ssh"}
    (root / "hooks" / "ssh.yaml").write_text(yaml.safe_dump(hook, sort_keys=False))
    n = 0
    for c in range(clusters):
        s = c // per_site
        host_list = []
        for h in range(per_cluster):
            third, fourth = divmod(n % 60000, 250)
            ip = f"10.{s}.{third % 250 + 1}.{fourth + 2}"
            host_list.append(
                {
                    "name": f"c{c}-h{h}",
                    "macs": [f"02:{(n >> 24) & 255:02x}:{(n >> 16) & 255:02x}:{(n >> 8) & 255:02x}:{n & 255:02x}:01"],
                    "uuid": f"00000000-0000-4000-8000-{n:012d}",
                    "roles": ["worker"],
                    "bmc": {"type": "ipmi" if h % 2 else "redfish", "address": f"10.{s}.254.{h + 1}", "credential": "bmc"},
                    "ips": {"prov": ip},
                    "vars": {"rack": f"r{h // 10}"},
                    # One change per cluster in the second revision: its first host is reinstalled.
                    "reinstall": 1 if (changed and h == 0) else 0,
                }
            )
            n += 1
        cluster = {
            "apiVersion": "vaquero/v1",
            "kind": "Cluster",
            "name": f"cluster{c}",
            "site": f"site{s}",
            "profile": "linux",
            "depends_on": [f"cluster{c - 1}"] if c % per_site else [],
            "policy": {"max_concurrent": 5, "min_available": "80%", "order_by": "rack"},
            "hooks": {"post_reboot": ["ssh"]},
            "hosts": host_list,
        }
        (root / "clusters" / f"cluster{c}.yaml").write_text(yaml.safe_dump(cluster, sort_keys=False))


def bare_parse(roots: list[Path]) -> int:
    docs = 0
    for root in roots:
        for path in sorted(root.rglob("*.yaml")):
            docs += sum(1 for _ in yaml.load_all(path.read_text(), Loader=LOADER))
    return docs


def vaquero_run(old: Path, new: Path) -> int:
    from vaquero.plan import make_plan, render_text
    from vaquero.sot import load

    # As `vaquero plan` does: the old revision is parsed, the new one fully validated.
    plan = make_plan(load(old, semantic=False), load(new))
    render_text(plan)
    return len(plan.hosts)


def _child(old: str, new: str, out: mp.Queue) -> None:  # type: ignore[type-arg]
    changes = vaquero_run(Path(old), Path(new))
    out.put((changes, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=10_000)
    ap.add_argument("--clusters", type=int, default=200)
    ap.add_argument("--sites", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old, new = Path(tmp, "old"), Path(tmp, "new")
        generate(old, args.sites, args.clusters, args.hosts, changed=False)
        generate(new, args.sites, args.clusters, args.hosts, changed=True)
        base_times, vq_times = [], []
        for _ in range(args.repeat):  # interleaved, so noise hits both sides alike
            t = time.perf_counter()
            bare_parse([old, new])
            base_times.append(time.perf_counter() - t)
            t = time.perf_counter()
            changes = vaquero_run(old, new)
            vq_times.append(time.perf_counter() - t)
        queue: mp.Queue = mp.get_context("spawn").Queue()  # type: ignore[type-arg]
        proc = mp.get_context("spawn").Process(target=_child, args=(str(old), str(new), queue))
        proc.start()
        child_changes, maxrss_kb = queue.get(timeout=600)
        proc.join()
    if changes != args.clusters or child_changes != changes:
        print(f"unexpected plan: {changes} host changes, expected {args.clusters}", file=sys.stderr)
        return 1
    base, vq = statistics.median(base_times), statistics.median(vq_times)
    print(f"hosts {args.hosts}, clusters {args.clusters}, sites {args.sites}, repeats {args.repeat}")
    print(f"bare YAML parse of both revisions (C loader): median {base:.3f}s")
    print(f"vaquero parse old, validate new, plan, dump: median {vq:.3f}s ({changes} host changes)")
    print(f"plan_scale validate+plan vs yaml parse ratio {vq / base:.2f} (vaquero {vq:.3f}s, yaml {base:.3f}s, target <= 3.0)")
    print(f"plan_scale peak memory ratio {maxrss_kb / 1024 / 500:.2f} (peak RSS {maxrss_kb / 1024:.0f} MB of a 500 MB budget)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
