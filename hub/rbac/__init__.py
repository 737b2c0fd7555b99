"""Role-based access control with JupyterHub's scope names.

`hub.rbac.scopes` defines every scope and how scopes expand, filter and
intersect; `hub.rbac.roles` defines the default roles and resolves an owner's
roles into scopes.
"""
