"""A controller process for the federation tests: the API app with the /v1/agents router, HTTPS.

python ctl_main.py STORE API_TOKENS AGENT_TOKENS CERT KEY HOST PORT
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import uvicorn

from vaquero.api.app import create_app
from vaquero.api.auth import require
from vaquero.api.settings import Settings, Tokens
from vaquero.federation.server import include
from vaquero.logs import setup_logging
from vaquero.state.sqlite import SQLiteStore


def main() -> None:
    store_path, api_tokens, agent_tokens, cert, key, host, port = sys.argv[1:8]
    setup_logging("debug")
    for name in ("httpx", "httpcore", "hpack", "h11", "asyncio"):
        logging.getLogger(name).setLevel(logging.WARNING)
    store = SQLiteStore(store_path)
    settings = Settings(data_dir=Path(store_path).parent / "ctl-data", tokens=Tokens.load(api_tokens, env=""))
    # exactly what `vaquero server` does: create_app, then include the agents' routes
    app = create_app(settings, store, start_gate=False)
    include(app, store, settings, agent_tokens, operator_auth=require)
    uvicorn.run(app, host=host, port=int(port), ssl_certfile=cert, ssl_keyfile=key, log_config=None, log_level=logging.DEBUG, timeout_graceful_shutdown=1)


if __name__ == "__main__":
    main()
