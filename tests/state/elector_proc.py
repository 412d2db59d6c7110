"""A controller stand-in for the failover tests: campaigns for leadership, says so on stdout, then
idles until killed. Usage: python elector_proc.py <store-url> <ttl> <identity>"""

from __future__ import annotations

import sys
import time

from vaquero.state import open_store
from vaquero.state.leader import LeaderElector


def main() -> None:
    url, ttl, identity = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    elector = LeaderElector(open_store(url), ttl=ttl, identity=identity)
    elector.start()
    while not elector.wait_for_leadership(60):
        pass
    print(f"LEADER {elector.token}", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
