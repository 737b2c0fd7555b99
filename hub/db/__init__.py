"""Database access: models (`hub.db.models`), engines and units of work
(`hub.db.engine`), schema version checks and upgrades (`hub.db.migrate`)."""
