#!/usr/bin/env bash
# Install Atrium into .venv (first time only) and run the hub on its embedded
# defaults: SQLite file in the current directory, local process spawner, on
# http://127.0.0.1:8000. On the first start it prints how to log in.
# Extra arguments go to `atrium`, e.g. scripts/run.sh --port 9000
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
"$here/scripts/venv.sh"
exec "$here/.venv/bin/atrium" "$@"
