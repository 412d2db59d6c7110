"""The federation link between the controller and its per-site agents.

server.py   the controller side: an APIRouter under /v1/agents (bundle, events, heartbeat)
bundle.py   what a site bundle holds, built from the applied revision and the host states
tokens.py   agent bearer tokens (lines `name:agent:token`, the API tokens file format)
client.py   the agent side's sync loop: pull the site bundle, push queued events, heartbeat
queue.py    the agent's durable event queue (SQLite)
cache.py    the agent's bundle cache and the leader fence mark it accepted
backoff.py  the wait between attempts while the controller is unreachable
errors.py   FederationError, what the agent side raises when the controller's answer is unusable

`vaquero agent --controller` (the boot services fed from the bundle cache, boot intents) is
`vaquero.agent.federated`; the federation knows nothing of the agent.

Deploying a controller and its agents, the link, partitions, upgrades: docs/deploy.md.
"""
