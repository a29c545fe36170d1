#!/bin/sh
# Mutation score of portal/status.py against tests/unit/test_status.py (issue 17: at least 90 %
# of the mutants killed). Runs in a throwaway copy of the working tree, so no mutmut config or
# mutants/ directory ever lands in the project.
#
# mutmut stays out of the project's dependencies: it lives in a venv of its own that also sees
# the project's packages (set it up once):
#   /root/.pyenv/versions/3.13.0/bin/python3 -m venv /tmp/mutvenv
#   /tmp/mutvenv/bin/pip install mutmut==3.8.1
#   echo "$PWD/.venv/lib/python3.13/site-packages" \
#     > /tmp/mutvenv/lib/python3.13/site-packages/project-deps.pth
#
# Usage: bench/mutmut-status.sh [git-revision]   (default: the working tree as it is)
# Prints mutmut's summary; the survivors' diffs are in $KEEP/mutants when KEEP is set.
set -eu

MUTVENV=${MUTVENV:-/tmp/mutvenv}
root=$(cd "$(dirname "$0")/.." && pwd)
work=${KEEP:-$(mktemp -d)}
[ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT
mkdir -p "$work"

if [ $# -ge 1 ]; then
    git -C "$root" archive "$1" | tar -x -C "$work"
else
    # Tracked files as they are now, edits included.
    (cd "$root" && git ls-files -z | xargs -0 tar -cf -) | tar -x -C "$work"
fi

# pytest-django puts the directory of the nearest manage.py on sys.path: copying manage.py into
# mutants/ keeps the tests on the mutated portal/ rather than the untouched one beside it.
cat >"$work/setup.cfg" <<'EOF'
[mutmut]
source_paths = portal
only_mutate = portal/status.py
also_copy =
    manage.py
    codesquare
    templates
    static
pytest_add_cli_args_test_selection = tests/unit/test_status.py
pytest_add_cli_args = -p no:cacheprovider
EOF

cd "$work"
"$MUTVENV/bin/mutmut" run --max-children "${JOBS:-2}" >/dev/null 2>&1 || true
"$MUTVENV/bin/mutmut" results --all true >"$work/results.txt" 2>&1 || true
echo "work dir: $work"
awk '{print $NF}' "$work/results.txt" | sort | uniq -c
