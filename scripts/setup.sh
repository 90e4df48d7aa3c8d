#!/usr/bin/env bash
# Set up a fresh clone: find Python 3.10 (Rasa 3.6 needs it), make .venv, install the
# project, train each locale's model (skipped when its data is unchanged).
set -euo pipefail
cd "$(dirname "$0")/.."

is_py310() { [ -x "$1" ] && "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; }

find_python() {
    local candidates=("${PYTHON:-}" "$(command -v python3.10 || true)")
    if command -v pyenv >/dev/null 2>&1; then
        for v in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.10(\.|$)' | sort -rV); do
            candidates+=("$(pyenv root)/versions/$v/bin/python")
        done
    fi
    candidates+=(/usr/bin/python3.10 /usr/local/bin/python3.10)
    for c in "${candidates[@]}"; do
        if [ -n "$c" ] && is_py310 "$c"; then echo "$c"; return 0; fi
    done
    return 1
}

# espeak-ng speaks the prompts (the embedded TTS); sox makes repeatable test audio;
# chromium (with a CJK font for its screenshots) is the browser the ops console's tests
# drive: they launch /usr/bin/chromium, Playwright's own browser download is not needed.
PACKAGES="espeak-ng sox chromium fonts-wqy-zenhei"
if ! command -v espeak-ng >/dev/null 2>&1 || ! command -v sox >/dev/null 2>&1 \
        || ! command -v chromium >/dev/null 2>&1 \
        || ! dpkg -s fonts-wqy-zenhei >/dev/null 2>&1; then
    echo "setup: installing $PACKAGES"
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq $PACKAGES >/dev/null \
        || { echo "error: could not install $PACKAGES (apt-get)" >&2; exit 1; }
fi

if ! is_py310 .venv/bin/python; then
    PY=$(find_python) || { echo "error: Python 3.10 not found (set PYTHON=/path/to/python3.10)" >&2; exit 1; }
    echo "setup: creating .venv with $PY"
    rm -rf .venv
    "$PY" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip wheel
fi
echo "setup: installing the project and its pinned dependencies"
.venv/bin/python -m pip install --quiet -e '.[dev]'
echo "setup: training the zh model if its data changed"
.venv/bin/ivr train
