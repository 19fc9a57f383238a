"""The sandbox network: a local server that speaks the subset of Mastodon's REST API OpenSMM uses,
with made-up traffic, rate limits and injectable faults, so demos, load and fault tests have a
social network to talk to (`python -m devstack.sandbox --port 8010`)."""

from devstack.sandbox.app import SandboxConfig, create_app
from devstack.sandbox.traffic import TrafficProfile

__all__ = ["SandboxConfig", "TrafficProfile", "create_app"]
