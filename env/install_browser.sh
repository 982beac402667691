#!/usr/bin/env bash
# Install Debian's headless Chromium for the browser test (tests/system/test_browser.py) when it is missing.
# Idempotent and quiet when already installed. If apt-get cannot be used (not Debian, not root and
# no sudo, no network), it says why and exits 0: the browser test then skips with that reason.
set -u
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
say() { echo "install_browser.sh: $*" >&2; }
if ! command -v apt-get >/dev/null 2>&1; then
    say "apt-get not found (not a Debian/Ubuntu system); install Chromium yourself so /usr/bin/chromium exists, or the browser test skips"
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        say "not root and no password-less sudo: run 'sudo apt-get install -y chromium' once, or the browser test skips"
        exit 0
    fi
fi
say "installing Debian chromium (once) ..."
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get update -qq >/dev/null && $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; }; then
    say "apt-get could not install chromium (offline or no such package); the browser test will skip"
    exit 0
fi
[ -x /usr/bin/chromium ] && say "chromium installed: $(/usr/bin/chromium --version 2>/dev/null)"
exit 0
