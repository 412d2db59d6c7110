"""The federation link between the controller and its per-site agents.

server.py  the controller side: an APIRouter under /v1/agents (bundle, events, heartbeat)
client.py  the agent side: pull and cache the site bundle, push events from a durable queue
agent.py   `vaquero agent --controller`: the boot services fed from the bundle cache, boot intents
bundle.py  what a site bundle holds, built from the applied revision and the host states
tokens.py  agent bearer tokens (lines `name:agent:token`, the API tokens file format)

Deploying a controller and its agents, the link, partitions, upgrades: docs/deploy.md.
"""
