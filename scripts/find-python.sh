#!/bin/sh
# Print the path of a Python >= 3.12 to build .venv with, or explain why there is none.
# Order: python3.13, python3.12 and python3 on PATH, then pyenv's installed 3.12+ (newest first).
# pyenv shims on PATH exist even when they cannot run (no PYENV_VERSION selects them), so every
# candidate is actually run and asked for its version and real executable.

ok() {
    "$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1
}

for candidate in python3.13 python3.12 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && ok "$candidate"; then
        "$candidate" -c 'import sys; print(sys.executable)'
        exit 0
    fi
done

if command -v pyenv >/dev/null 2>&1; then
    root=$(pyenv root 2>/dev/null)
    # Newest first: sort -V orders 3.12.10 after 3.12.9.
    for candidate in $(ls -d "$root"/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -rV); do
        if ok "$candidate"; then
            echo "$candidate"
            exit 0
        fi
    done
fi

echo "No Python 3.12 or newer found (looked for python3.13, python3.12 and python3 on PATH, and in pyenv)." >&2
echo "Install Python 3.12+ (e.g. 'pyenv install 3.13') and run make again." >&2
exit 1
