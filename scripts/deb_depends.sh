#!/usr/bin/env bash
# The Debian packages a built folder needs from the system: what the Qt libraries and the xcb
# platform plugin link (ldd, with the folder's own libraries first, as the frozen app loads
# them) that the folder does not carry itself, mapped to packages with dpkg -S; plus the xcb
# plugin's usual set, which PyInstaller bundles only when the build machine has it.
# Usage: scripts/deb_depends.sh dist/tunedeck   -> one comma-separated Depends value
set -euo pipefail
folder=$(cd "$1" && pwd)/_internal
qt=$folder/PySide6/Qt
always=(libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-shape0
    libxcb-cursor0 libxkbcommon-x11-0 libegl1 libgl1 libfontconfig1 libdbus-1-3)
libs=$(for f in "$qt"/plugins/platforms/libqxcb.so "$qt"/plugins/xcbglintegrations/*.so \
    "$qt"/lib/libQt6*.so.6 "$folder"/PySide6/*.abi3.so; do
    LD_LIBRARY_PATH=$folder ldd "$f"
done | awk '/=>/ {print $1, $3}' | sort -u)
if grep -q "not found" <<<"$libs"; then
    echo "error: the build machine lacks libraries the Qt plugins need:" >&2
    grep "not found" <<<"$libs" | sed 's/^/  /' >&2
    echo "install them (scripts/ensure-system-deps.sh) and build again" >&2
    exit 1
fi
packages=("${always[@]}")
while read -r _name path; do
    [[ $path == "$folder"/* ]] && continue
    real=$(readlink -f "$path")
    # usrmerge: dpkg knows /usr/lib/... or /lib/... depending on the package
    owner=$(dpkg -S "$real" 2>/dev/null || dpkg -S "/usr$real" 2>/dev/null || dpkg -S "${real#/usr}" 2>/dev/null || true)
    owner=${owner%%:*}
    if [[ -z $owner ]]; then
        echo "error: no Debian package owns $real (needed by the Qt plugins)" >&2
        exit 1
    fi
    packages+=("$owner")
done <<<"$libs"
printf '%s\n' "${packages[@]}" | sort -u | paste -sd, - | sed 's/,/, /g'
