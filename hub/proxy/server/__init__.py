"""`atrium proxy`: the HTTP and WebSocket proxy process.

A drop-in for configurable-http-proxy: the same command-line flags and routes
API (`api.py`), longest-prefix routing (`routes.py`), and a protocol-level
forwarder on asyncio + uvloop + httptools (`forward.py`) that streams bodies
both ways with back-pressure and passes WebSocket frames through untouched.
`main.py` parses the flags and runs it.
"""
