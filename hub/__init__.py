"""Atrium's hub: authentication, the REST API, spawn orchestration and administration.

`hub.app` wires the pieces together; each start-up step lives in its own module
(`hub.settings`, `hub.secretfiles`, `hub.db`, `hub.bootstrap`, `hub.web`).
"""

__version__ = "0.1.0"
