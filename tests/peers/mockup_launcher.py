"""Run the vendored DMTF Redfish-Mockup-Server unmodified.

It imports ``grequests`` (gevent) at the top, only to send events to subscribers, which these
tests never create; a stand-in module lets it start without pulling gevent into the test set-up.

Usage: python mockup_launcher.py <redfishMockupServer.py arguments>
"""

import sys
import types
from pathlib import Path

sys.modules.setdefault("grequests", types.ModuleType("grequests"))
sys.path.insert(0, str(Path(__file__).parent / "redfish_mockup_server"))

import redfishMockupServer  # noqa: E402

sys.argv[0] = "redfishMockupServer.py"
redfishMockupServer.main()
