"""HTML pages served by the hub (as opposed to the JSON API in `hub.api`)."""
