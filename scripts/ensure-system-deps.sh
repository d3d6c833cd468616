#!/usr/bin/env bash
# System packages the test suite needs: a real Secret Service (gnome-keyring) on a private D-Bus
# session, and Xvfb for screenshots. Installs them with apt-get when missing and we are root;
# otherwise says what to install.
set -euo pipefail
missing=()
command -v gnome-keyring-daemon >/dev/null || missing+=(gnome-keyring)
command -v dbus-run-session >/dev/null || missing+=(dbus)
command -v xvfb-run >/dev/null || missing+=(xvfb xauth)
# the xcb platform plugin's libraries (for screenshots under Xvfb)
dpkg -s libxcb-cursor0 >/dev/null 2>&1 || missing+=(libxcb-cursor0)
# (libxkbcommon-x11-0 alone may be there without these two, which the xcb plugin also needs)
dpkg -s libxcb-icccm4 >/dev/null 2>&1 || missing+=(libxcb-icccm4)
dpkg -s libxcb-keysyms1 >/dev/null 2>&1 || missing+=(libxcb-keysyms1)
dpkg -s libxkbcommon-x11-0 >/dev/null 2>&1 || missing+=(libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libegl1 libgl1 libfontconfig1 libdbus-1-3)
if ((${#missing[@]})); then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "installing system packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "missing system packages: ${missing[*]} (install them with your package manager)" >&2
        exit 1
    fi
fi
