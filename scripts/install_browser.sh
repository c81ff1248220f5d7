#!/usr/bin/env sh
# The browser tests drive Debian's Chromium and ChromeDriver (a test tool's own browser download
# does not work everywhere): install them if they are missing. Needs apt-get (Debian, Ubuntu) and
# root, or sudo.
set -eu
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
as_root=""
[ "$(id -u)" -eq 0 ] || as_root="sudo"
$as_root apt-get update -qq
DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq chromium chromium-driver >/dev/null
echo "installed chromium and chromium-driver"
