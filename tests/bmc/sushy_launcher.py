"""Start sushy-emulator with its fake driver's random 1-11 s power delay pinned to
$VQ_SUSHY_POWER_DELAY seconds (default 0; a large value freezes the power state).

Usage: python sushy_launcher.py <sushy-emulator arguments>
"""

import os
import sys

from sushy_tools.emulator.resources.systems import fakedriver


class _NoDelay:
    @staticmethod
    def randint(a, b):
        return int(os.environ.get("VQ_SUSHY_POWER_DELAY", "0"))


fakedriver.random = _NoDelay  # type: ignore[assignment]

from sushy_tools.emulator.main import main  # noqa: E402

sys.argv[0] = "sushy-emulator"
sys.exit(main())
