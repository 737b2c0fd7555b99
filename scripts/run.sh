#!/usr/bin/env bash
# Install Atrium into .venv (first time only) and run the hub on its embedded
# defaults: SQLite file in the current directory, local process spawner, on
# http://127.0.0.1:8000. On the first start it prints how to log in.
# Extra arguments go to `atrium`, e.g. scripts/run.sh --port 9000
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
"$here/scripts/venv.sh"
extra=()
if [ "$(id -u)" = 0 ]; then
  # one-account mode runs servers as the hub's account: as root only when told to
  echo "run.sh: running as root, so user servers run as root too (fine for a throw-away" >&2
  echo "run.sh: machine; on a shared one use c.LocalProcessSpawner.mode = 'system-users')" >&2
  extra+=(--LocalProcessSpawner.allow_root=True)
fi
exec "$here/.venv/bin/atrium" "${extra[@]}" "$@"
