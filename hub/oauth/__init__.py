"""The hub as an OAuth2 provider: how single-user servers and services log people in."""
