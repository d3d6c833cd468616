#!/usr/bin/env bash
# `make package`: the one-folder app (dist/tunedeck), checked, then the .deb.
#
# It builds from its own virtual environment (build/package-venv: the app and PyInstaller, no
# ML stack), so that nothing of torch and friends can be found by the analysis at all; the
# check afterwards makes sure. The installers' workflow runs exactly this on its Linux runner.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=build/package-venv
case "$(uname -s)" in
MINGW* | MSYS* | CYGWIN*) PY=$VENV/Scripts/python.exe ;; # the Windows runner's Git Bash
*) PY=$VENV/bin/python ;;
esac
LIMIT_MB=${LIMIT_MB:-300}

started=$SECONDS
if [[ ! -f $VENV/.installed || pyproject.toml -nt $VENV/.installed || requirements/constraints.txt -nt $VENV/.installed ]]; then
    echo "== packaging environment ($VENV)"
    test -x "$PY" || "$PYTHON" -m venv "$VENV"
    "$PY" -m pip install --quiet -c requirements/constraints.txt -e '.[package]'
    touch "$VENV/.installed"
fi
if "$PY" -c 'import importlib.util as u, sys; sys.exit(any(u.find_spec(m) for m in ("torch", "transformers", "trl")))'; then :; else
    echo "error: $VENV has the ML stack installed; remove $VENV and build again" >&2
    exit 1
fi

echo "== trainer wheel (installed by 'Set up local training')"
rm -rf build/trainer-wheel
"$PY" -m pip wheel --quiet --no-deps -w build/trainer-wheel .

echo "== one-folder app (PyInstaller)"
t0=$SECONDS
rm -rf dist/tunedeck
"$PY" -m PyInstaller --noconfirm --log-level WARN --distpath dist --workpath build/pyinstaller \
    packaging/tunedeck.spec
echo "PyInstaller took $((SECONDS - t0)) s"
"$PY" scripts/check_package.py dist/tunedeck --limit-mb "$LIMIT_MB"

case "$(uname -s)" in
Linux)
    echo "== .deb"
    bash scripts/build_deb.sh dist/tunedeck
    ;;
*) echo "(the .deb is built on Linux only)" ;;
esac
echo "make package took $((SECONDS - started)) s"
