"""Run the vendored DMTF Redfish-Interface-Emulator (dynamic mode) on 127.0.0.1.

The emulator reads ``emulator-config.json`` (and, with HTTPS, ``server.crt``/``server.key``) from
its working directory, which the test fixture prepares; unless run in Flask's debug mode it
listens on every address, so Flask's ``run`` is wrapped to keep it on loopback.

Usage: python emulator_launcher.py -port PORT   (in the prepared working directory)
"""

import runpy
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent / "redfish_interface_emulator"
sys.path.insert(0, str(HERE))

import g  # noqa: E402  (the emulator's shared Flask app: the same module object emulator.py imports)

_run = g.app.run


def _run_on_loopback(**kwargs: Any) -> None:
    kwargs["host"] = "127.0.0.1"
    _run(**kwargs)


g.app.run = _run_on_loopback  # type: ignore[method-assign]
sys.argv = [str(HERE / "emulator.py"), *sys.argv[1:]]
runpy.run_path(str(HERE / "emulator.py"), run_name="__main__")
