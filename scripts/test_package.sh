#!/usr/bin/env bash
# `make test-package` (after `make package`): the built folder and the installed .deb work.
#
# 1. dist/tunedeck: --version of both commands, --smoke-test offscreen.
# 2. The .deb: apt-get install ./deb (root: CI runs as root on this kind of machine), the
#    installed commands' --version and --smoke-test (offscreen, and under Xvfb on the real xcb plugin when
#    xvfb-run is there: that is what proves the Depends line).
# 3. From the installed app: `tunedeck setup-training` (pip, torch from the constraints file:
#    on these machines the CPU wheel lies on disk) and the demo run through the installed CLI's
#    launcher, which must complete with metrics in the store. SKIP_TRAINING=1 leaves it out.
# 4. dpkg -r: nothing of the package is left on the file system.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
folder=dist/tunedeck
deb=$(ls -t dist/tunedeck_*.deb | head -1)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

say() { printf '== %s\n' "$*"; }
fail() { printf 'test-package FAILED: %s\n' "$*" >&2; exit 1; }

say "built folder: --version, --smoke-test"
"$folder/tunedeck" --version
"$folder/tunedeck-gui" --version
QT_QPA_PLATFORM=offscreen "$folder/tunedeck-gui" --smoke-test || fail "the built folder's smoke test"

[[ $(id -u) -eq 0 ]] || fail "installing the .deb needs root (CI runs as root here)"
if dpkg-query -W -f='${Status}' tunedeck 2>/dev/null | grep -q "install ok"; then
    fail "a tunedeck package is already installed here; remove it first (dpkg -r tunedeck)"
fi
watched=(/opt /usr/bin /usr/share/applications /usr/share/icons/hicolor /usr/share/metainfo)
# the icon and desktop caches belong to the packages whose triggers rebuild them, not to ours
list_files() { find "${watched[@]}" 2>/dev/null | grep -v -e '/icon-theme\.cache$' -e '/mimeinfo\.cache$' | sort; }
list_files >"$scratch/before"

say "install $deb"
# as a user installs it (README): apt resolves the Depends line on a machine that lacks some of
# the libraries (dpkg -i would stop there); plain dpkg where there is no apt
if command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "$PWD/$deb" ||
        { apt-get update -qq && apt-get install -y -qq --no-install-recommends "$PWD/$deb"; }
else
    dpkg -i "$deb"
fi
cleanup_deb() { dpkg -r tunedeck >/dev/null 2>&1 || true; rm -rf "$scratch"; }
trap cleanup_deb EXIT
[[ -x /opt/tunedeck/tunedeck-gui && -L /usr/bin/tunedeck-gui && -L /usr/bin/tunedeck ]] ||
    fail "the .deb did not install /opt/tunedeck and the /usr/bin links"
[[ -f /usr/share/applications/tunedeck.desktop && -f /usr/share/icons/hicolor/256x256/apps/tunedeck.png ]] ||
    fail "no launcher entry or icon installed"
if command -v desktop-file-validate >/dev/null; then
    desktop-file-validate /usr/share/applications/tunedeck.desktop
fi

say "installed app: --version, --smoke-test"
(cd "$scratch" && tunedeck --version && tunedeck-gui --version)
(cd "$scratch" && QT_QPA_PLATFORM=offscreen tunedeck-gui --smoke-test) ||
    fail "the installed app's smoke test (offscreen)"
if command -v xvfb-run >/dev/null; then
    (cd "$scratch" && xvfb-run -a -s "-screen 0 1280x800x24" env QT_QPA_PLATFORM=xcb tunedeck-gui --smoke-test) ||
        fail "the installed app's smoke test on the xcb platform (a missing Depends?)"
fi

if [[ ${SKIP_TRAINING:-0} != 1 ]]; then
    say "installed app: set up local training, then train the demo with it"
    export TUNEDECK_CONFIG_DIR=$scratch/config TUNEDECK_DATA_DIR=$scratch/data
    export TUNEDECK_CACHE_DIR=$scratch/cache HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
    t0=$SECONDS
    tunedeck setup-training --torch cpu --torch-index "" --tool venv \
        --constraints "$PWD/requirements/constraints.txt" --env "$scratch/trainer-env" ||
        fail "setup-training from the installed app"
    echo "setup-training took $((SECONDS - t0)) s"
    t0=$SECONDS
    # the demo preset, shortened to 20 steps, its dataset found from anywhere
    python3 - "$PWD" "$scratch/demo.json" <<'PY'
import json, sys
root, out = sys.argv[1], sys.argv[2]
cfg = json.load(open(f"{root}/resources/presets/demo-sft.json"))
cfg["dataset"]["path"] = f"{root}/{cfg['dataset']['path']}"
cfg["training"]["max_steps"] = 20
json.dump(cfg, open(out, "w"))
PY
    (cd "$scratch" && tunedeck run "$scratch/demo.json") ||
        fail "the demo run through the installed app's launcher"
    echo "the demo run took $((SECONDS - t0)) s"
    (cd "$scratch" && tunedeck jobs --limit 1) | tee "$scratch/jobs.txt"
    grep -q completed "$scratch/jobs.txt" || fail "the demo job did not complete"
    job=$(cd "$scratch" && tunedeck jobs --limit 1 | grep -oE '[0-9]{8}-[0-9]{6}-[0-9a-f]{6}' | head -1)
    points=$(cd "$scratch" && tunedeck export "$job" --csv | tail -n +2 | wc -l)
    echo "job $job: $points metric rows in the store"
    [[ $points -gt 0 ]] || fail "the demo job stored no metrics"
    unset TUNEDECK_CONFIG_DIR TUNEDECK_DATA_DIR TUNEDECK_CACHE_DIR
fi

say "uninstall"
dpkg -r tunedeck
trap 'rm -rf "$scratch"' EXIT
list_files >"$scratch/after"
if ! diff -u "$scratch/before" "$scratch/after"; then
    fail "dpkg -r left files behind (above)"
fi
dpkg-query -W -f='${Status}' tunedeck 2>/dev/null | grep -q "install ok" && fail "still installed"
echo "test-package passed in $((SECONDS - started)) s"
