"""Spawners: the contract (`spawners.base`) and the ways to run a user's server."""
