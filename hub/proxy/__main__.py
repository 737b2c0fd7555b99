"""`python -m hub.proxy`: the proxy process (`hub.proxy.server.main`) without the rest of
the hub. `atrium proxy` runs the same thing, but its entry point (`hub.app`) imports the
whole hub first (its spawners, Kubernetes' client among them): seconds at every start
of a proxy or proxy worker on a busy machine, and a proxy restart waits for them."""

import sys

from hub.proxy.server.main import main

main(sys.argv[1:])
