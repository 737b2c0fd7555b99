"""The per-user Jupyter server: a jupyter_server extension and its launcher."""
