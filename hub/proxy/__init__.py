"""The proxy: the process in front of everything (`hub.proxy.server`, run as
`atrium proxy`) and the hub's side of it (client, supervisor)."""
