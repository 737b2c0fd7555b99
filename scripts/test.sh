#!/usr/bin/env bash
# Install what the tests need (PostgreSQL and Chromium from Debian's packages when missing,
# configurable-http-proxy from npm into .scratch/chp, axe-core and oidc-provider into
# tests/js, JupyterHub 6 into .scratch/jupyterhub-venv, Atrium into
# /opt/atrium-test-sysusers for the system-users tests, the Python test tools into .venv)
# and run everything:
# ruff, mypy, pytest.
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

# Chromium from Debian for the browser tests (Playwright drives it; it cannot
# download browsers here)
if [ ! -x /usr/bin/chromium ]; then
    echo "Installing Chromium..."
    apt_install chromium
fi

# configurable-http-proxy (npm) for the proxy client tests, in a scratch directory
if [ ! -x .scratch/chp/node_modules/.bin/configurable-http-proxy ]; then
    if command -v npm >/dev/null 2>&1; then
        echo "Installing configurable-http-proxy..."
        npm install --silent --no-audit --no-fund --prefix .scratch/chp configurable-http-proxy@5
    else
        echo "warning: npm not found; the configurable-http-proxy tests cannot run" >&2
    fi
fi

# axe-core (npm, pinned by tests/js/package-lock.json) for the browser tests' accessibility
# checks, and oidc-provider, the OpenID Provider the OAuth login tests run
if [ ! -f tests/js/node_modules/axe-core/axe.min.js ] \
    || [ ! -f tests/js/node_modules/oidc-provider/package.json ]; then
    if command -v npm >/dev/null 2>&1; then
        echo "Installing axe-core and oidc-provider for the tests..."
        npm ci --silent --no-audit --no-fund --prefix tests/js
    else
        echo "warning: npm not found; the accessibility checks cannot run" >&2
    fi
fi

# JupyterHub 6 (pip) for the test that runs it with `atrium proxy` as its proxy
# (with jupyter_server, for the test that runs its jupyterhub-singleuser under Atrium)
if [ ! -x .scratch/jupyterhub-venv/bin/jupyterhub ] \
    || ! .scratch/jupyterhub-venv/bin/python -c "import jupyter_server" 2>/dev/null; then
    echo "Installing JupyterHub 6 into .scratch/jupyterhub-venv..."
    python3 -m venv .scratch/jupyterhub-venv
    .scratch/jupyterhub-venv/bin/python -m pip install -q "jupyterhub==6.*" "jupyter_server>=2.14"
fi

# Atrium in a Python every account can read, for the system-users tests (servers run
# as other Unix accounts, which cannot read a Python under /root); reinstalled from
# this checkout on every run. Only when root (the tests need to create accounts).
if [ "$(id -u)" = 0 ] && [ -x /usr/bin/python3 ]; then
    sysvenv=/opt/atrium-test-sysusers
    if [ ! -x "$sysvenv/bin/jupyter-console" ]; then
        echo "Installing Atrium for the system-users tests into $sysvenv..."
        /usr/bin/python3 -m venv "$sysvenv"
        "$sysvenv/bin/python" -m pip install -q jupyter_console .
    fi
    # this checkout's code, and any dependency it gained since
    "$sysvenv/bin/python" -m pip install -q --force-reinstall --no-deps .
    "$sysvenv/bin/python" -m pip install -q .
fi

scripts/venv.sh test

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
.venv/bin/pytest --durations=30 "$@"
