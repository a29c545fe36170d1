# Shared by bin/run and bin/test: find a Python >= 3.12 and keep .venv installed and current.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

_py_ok() { "$@" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; }

find_python() {
    local cand v
    if [ -n "${PYTHON:-}" ] && _py_ok "$PYTHON"; then echo "$PYTHON"; return 0; fi
    for cand in python3.14 python3.13 python3.12 python3; do
        if command -v "$cand" >/dev/null 2>&1 && _py_ok "$cand"; then
            "$cand" -c 'import sys; print(sys.executable)'; return 0
        fi
    done
    # pyenv shims refuse versions that are installed but not selected: ask pyenv directly.
    if command -v pyenv >/dev/null 2>&1; then
        for v in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.(1[2-9])(\.[0-9]+)?$' | sort -rV); do
            cand="$(pyenv root)/versions/$v/bin/python3"
            if [ -x "$cand" ] && _py_ok "$cand"; then echo "$cand"; return 0; fi
        done
    fi
    return 1
}

ensure_venv() {
    local py stamp want
    if [ ! -x "$VENV/bin/python" ] || ! _py_ok "$VENV/bin/python"; then
        if ! py="$(find_python)"; then
            echo "error: CodeSquare Portal needs Python 3.12 or newer, and none was found." >&2
            echo "       Install one (e.g. 'apt-get install python3.12', or 'pyenv install 3.13')," >&2
            echo "       or point PYTHON=/path/to/python3.12 at it, then run this again." >&2
            exit 1
        fi
        echo "==> creating .venv with $py ($("$py" --version))"
        rm -rf "$VENV"
        "$py" -m venv "$VENV"
        "$VENV/bin/python" -m pip install --quiet --upgrade pip
    fi
    stamp="$VENV/.installed"
    want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        echo "==> installing the portal and its dependencies into .venv"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[dev]"
        echo "$want" > "$stamp"
    fi
    export PATH="$VENV/bin:$PATH"
}
