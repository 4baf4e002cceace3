#!/usr/bin/env bash
# The browser the map page's test drives: Debian's chromium, headless.
#
#   scripts/browser.sh install   installs chromium with apt-get when missing
#   scripts/browser.sh path      prints the browser's path (fails if missing)
set -euo pipefail

find_browser() {
    for b in chromium chromium-browser; do
        if command -v "$b" >/dev/null 2>&1; then
            command -v "$b"
            return 0
        fi
    done
    return 1
}

case "${1:-}" in
install)
    if find_browser >/dev/null; then
        exit 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends chromium; then
        apt-get update
        apt-get install -y --no-install-recommends chromium
    fi
    find_browser
    ;;
path)
    find_browser
    ;;
*)
    echo "usage: $0 install|path" >&2
    exit 2
    ;;
esac
