#!/usr/bin/env bash
# Build dist/tunedeck_<version>_<arch>.deb from a built folder: the app in /opt/tunedeck, the
# commands as /usr/bin symlinks, a launcher entry, hicolor icons and AppStream metadata.
# No maintainer scripts: the icon and desktop caches are refreshed by the triggers of the
# packages that own them, and dpkg -r removes exactly the files listed here.
set -euo pipefail
cd "$(dirname "$0")/.."
folder=${1:-dist/tunedeck}
version=$("$folder/tunedeck" --version | awk '{print $2}')
arch=$(dpkg --print-architecture)
depends=$(bash scripts/deb_depends.sh "$folder")
root=build/deb/tunedeck_${version}_${arch}
out=dist/tunedeck_${version}_${arch}.deb

rm -rf "$root"
mkdir -p "$root/DEBIAN" "$root/opt" "$root/usr/bin" "$root/usr/share/applications" \
    "$root/usr/share/metainfo" "$root/usr/share/icons/hicolor/scalable/apps"
cp -a "$folder" "$root/opt/tunedeck"
ln -s /opt/tunedeck/tunedeck-gui "$root/usr/bin/tunedeck-gui"
ln -s /opt/tunedeck/tunedeck "$root/usr/bin/tunedeck"
install -m 644 packaging/linux/tunedeck.desktop "$root/usr/share/applications/tunedeck.desktop"
install -m 644 packaging/linux/org.tunedeck.Tunedeck.metainfo.xml "$root/usr/share/metainfo/"
install -m 644 resources/icons/tunedeck.svg "$root/usr/share/icons/hicolor/scalable/apps/tunedeck.svg"
for png in resources/icons/tunedeck-*.png; do
    size=${png##*-}
    size=${size%.png}
    mkdir -p "$root/usr/share/icons/hicolor/${size}x${size}/apps"
    install -m 644 "$png" "$root/usr/share/icons/hicolor/${size}x${size}/apps/tunedeck.png"
done
installed_kb=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: tunedeck
Version: $version
Architecture: $arch
Maintainer: Tunedeck developers <tunedeck@users.noreply.github.com>
Section: science
Priority: optional
Installed-Size: $installed_kb
Depends: $depends
Homepage: https://github.com/tunedeck/tunedeck
Description: fine-tune language models locally or on RunPod
 Tunedeck runs SFT, continued pre-training, DPO, ORPO, KTO, GRPO and RLHF with
 TRL on this machine or on a RunPod GPU, with live charts of the run.
 .
 The app carries no training stack: "Set up local training" creates a
 separate Python environment with the right torch build on first start.
CONTROL
# Releases take xz at its default level; a package that is built only to be installed and
# thrown away (`make test-package` in CI) may ask for a faster one: DEB_COMPRESSION="-Zxz -z1"
# shellcheck disable=SC2086  # the options are words on purpose
dpkg-deb --root-owner-group ${DEB_COMPRESSION:--Zxz} --build "$root" "$out" >/dev/null
echo "Depends: $depends"
echo "deb $out: $(du -m --apparent-size "$out" | cut -f1) MB ($(stat -c %s "$out") bytes); installs $((installed_kb / 1024)) MB"
