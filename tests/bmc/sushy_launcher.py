"""Start sushy-emulator with its fake driver's random 1-11 s power delay pinned to 0 s.

Usage: python sushy_launcher.py <sushy-emulator arguments>
"""

import sys

from sushy_tools.emulator.resources.systems import fakedriver


class _NoDelay:
    @staticmethod
    def randint(a, b):
        return 0


fakedriver.random = _NoDelay  # type: ignore[assignment]

from sushy_tools.emulator.main import main  # noqa: E402

sys.argv[0] = "sushy-emulator"
sys.exit(main())
