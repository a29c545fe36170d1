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

# The browser tests drive Debian's Chromium (Playwright's own download is not available here) and
# need CJK fonts, or every Korean glyph in their screenshots is a box.
_have_cjk_fonts() {
    if command -v fc-list >/dev/null 2>&1; then
        fc-list :lang=ko family 2>/dev/null | grep -qi 'noto.*cjk'
    else
        compgen -G '/usr/share/fonts/opentype/noto/NotoSansCJK*' >/dev/null
    fi
}

ensure_browser() {
    local missing=() chromium="${CODESQUARE_CHROMIUM:-/usr/lib/chromium/chromium}"
    [ -x "$chromium" ] || missing+=(chromium)
    _have_cjk_fonts || missing+=(fonts-noto-cjk)
    [ "${#missing[@]}" -eq 0 ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "==> installing ${missing[*]} for the browser tests (apt-get)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" fontconfig >/dev/null
        [ -x "$chromium" ] && _have_cjk_fonts && return 0
        echo "error: installed ${missing[*]}, yet $chromium or the Noto CJK fonts are still missing" >&2
        exit 1
    fi
    echo "error: the browser tests (tests/browser) need the Debian packages: ${missing[*]}" >&2
    echo "       Install them as root: apt-get install ${missing[*]}" >&2
    exit 1
}
