#!/usr/bin/env bash
# Run a command with a real Secret Service: a private D-Bus session and an unlocked
# gnome-keyring in a throw-away HOME (so tests never touch the user's own keyring).
set -euo pipefail
if ! command -v dbus-run-session >/dev/null || ! command -v gnome-keyring-daemon >/dev/null; then
    echo "with-keyring: dbus-run-session or gnome-keyring-daemon missing; running without a keyring" >&2
    exec "$@"
fi
export TUNEDECK_REAL_HOME="$HOME"
HOME=$(mktemp -d)
export HOME
# without ~/.cache the daemon's first call hangs for two minutes (NOTES.md)
mkdir -p "$HOME/.cache" "$HOME/.local/share/keyrings"
exec dbus-run-session -- bash -c '
    eval "$(printf tunedeck-test | gnome-keyring-daemon --unlock --components=secrets)"
    export GNOME_KEYRING_CONTROL
    export TUNEDECK_SECRET_SERVICE=1
    exec "$@"
' with-keyring "$@"
