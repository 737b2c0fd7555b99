#!/usr/bin/env bash
# Create .venv and install Atrium into it (editable), with extras given as $1
# (e.g. "test"). Re-running is fast: it reinstalls only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

extras="${1:-}"
python="${PYTHON:-python3}"

if ! command -v "$python" >/dev/null 2>&1; then
    echo "error: $python not found; install Python 3.11 or newer" >&2
    exit 1
fi
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "error: Atrium needs Python 3.11 or newer; $python is $("$python" --version)" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    if ! "$python" -m venv .venv 2>/dev/null; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "Installing python3-venv..."
            apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
            rm -rf .venv
            "$python" -m venv .venv
        else
            echo "error: cannot create a virtualenv; install python3-venv (Debian/Ubuntu)" >&2
            exit 1
        fi
    fi
    .venv/bin/python -m pip install -q --upgrade pip
fi

stamp=".venv/.atrium-installed-${extras:-base}-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    echo "Installing Atrium${extras:+ with [$extras]} into .venv..."
    target="."
    [ -n "$extras" ] && target=".[$extras]"
    .venv/bin/python -m pip install -q -e "$target"
    rm -f .venv/.atrium-installed-"${extras:-base}"-*
    touch "$stamp"
fi
