"""vaquero.runner: applies approved plans through the collection's playbooks (ansible-runner).

The runner knows nothing of the API: its operator routes live in :mod:`vaquero.api.runs`, which
also attaches a worker to a controller process (``vaquero server``)::

    from vaquero.api.runs import attach
    worker = attach(app, store, data_dir)   # mounts /v1/runs/<id>/pause|resume|abort|steps, starts the worker
    ...
    worker.stop()                           # on shutdown
"""
