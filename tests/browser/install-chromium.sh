#!/bin/sh
# Installs the headless browser the browser tests drive: Chromium from Debian's own packages
# (never a downloaded browser build). tests/clients/conftest.py runs this when /usr/bin/chromium
# is missing; run it by hand as root (or with sudo) to install ahead of the tests.
set -eu
export DEBIAN_FRONTEND=noninteractive
if [ "$(id -u)" -eq 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root="sudo -n"
else
    echo "install-chromium.sh: installing Debian's chromium package needs root (or sudo without a password)" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-chromium.sh: no apt-get: install Chromium from your system's packages so that /usr/bin/chromium exists" >&2
    exit 1
fi
# wait for another apt or dpkg run (e.g. unattended upgrades) instead of failing at once
wait_lock="-o DPkg::Lock::Timeout=120"
$as_root apt-get $wait_lock update -qq
$as_root apt-get $wait_lock install -y -qq --no-install-recommends chromium
/usr/bin/chromium --version
