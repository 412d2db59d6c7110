"""vaquero.runner: applies approved plans through the collection's playbooks (ansible-runner).

For a controller process (``vaquero server``), two lines attach the runner to the API::

    from vaquero.runner import attach
    worker = attach(app, store, data_dir)   # mounts /v1/runs/<id>/pause|resume|abort|steps, starts the worker
    ...
    worker.stop()                           # on shutdown
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def attach(app: Any, store: Any, data_dir: str | Path, **worker_options: Any) -> Any:
    """Mount the operator router on a FastAPI `app` and start a RunWorker on `store`; returns the worker."""
    from .api import router
    from .worker import RunWorker

    app.include_router(router)
    return RunWorker(store, data_dir, **worker_options).start()


__all__ = ["attach"]
