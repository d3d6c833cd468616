#!/usr/bin/env bash
# An AppImage from the built folder (after `make package`): AppDir with the folder, AppRun, the
# desktop entry and icon; packed with appimagetool (APPIMAGETOOL=path, default on PATH).
# Used by the installers workflow on its Linux runner; not part of `make package`, because
# appimagetool is a download from outside the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."
folder=${1:-dist/tunedeck}
# a command with its options, e.g. "build/appimagetool --appimage-extract-and-run" (no FUSE on CI)
read -ra tool <<<"${APPIMAGETOOL:-appimagetool}"
version=$("$folder/tunedeck" --version | awk '{print $2}')
appdir=build/AppDir
rm -rf "$appdir"
mkdir -p "$appdir/usr/share/metainfo"
cp -a "$folder" "$appdir/tunedeck"
cat >"$appdir/AppRun" <<'APPRUN'
#!/bin/sh
# `tunedeck` (the CLI) when called through a link of that name, else the desktop app
HERE=$(dirname "$(readlink -f "$0")")
case "${ARGV0##*/}" in
tunedeck) exec "$HERE/tunedeck/tunedeck" "$@" ;;
*) exec "$HERE/tunedeck/tunedeck-gui" "$@" ;;
esac
APPRUN
chmod +x "$appdir/AppRun"
cp packaging/linux/tunedeck.desktop "$appdir/tunedeck.desktop"
cp resources/icons/tunedeck-256.png "$appdir/tunedeck.png"
cp packaging/linux/org.tunedeck.Tunedeck.metainfo.xml "$appdir/usr/share/metainfo/"
out=dist/Tunedeck-${version}-x86_64.AppImage
ARCH=x86_64 "${tool[@]}" --no-appstream "$appdir" "$out"
echo "AppImage $out: $(du -m --apparent-size "$out" | cut -f1) MB"
