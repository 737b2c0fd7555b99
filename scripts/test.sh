#!/usr/bin/env bash
# Install what the tests need (PostgreSQL from Debian's packages when missing,
# the Python test tools into .venv) and run everything: ruff, mypy, pytest.
# With CI=true a missing system part fails the run instead of being skipped.
# Extra arguments go to pytest, e.g. scripts/test.sh -k users
set -euo pipefail
cd "$(dirname "$0")/.."

apt_updated=""
apt_install() {
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        echo "warning: cannot install $* (not root or no apt-get)" >&2
        return 0
    fi
    if [ -z "$apt_updated" ]; then
        apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

have_postgres() {
    command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}
if ! have_postgres; then
    echo "Installing PostgreSQL..."
    apt_install postgresql
fi

scripts/venv.sh test

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
.venv/bin/pytest "$@"
