"""Units of work: plain functions taking a SQLAlchemy `Session`.

API handlers run them through `Database.run`; `hub-admin --db` runs the same
functions directly, so the offline CLI and the REST API cannot disagree.
They return plain data (dicts, dataclasses), never ORM objects.
"""
