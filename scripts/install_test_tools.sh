#!/usr/bin/env sh
# What the tests run besides Python and Node: Debian's Chromium and ChromeDriver for the browser
# tests (a test tool's own browser download does not work everywhere), and PostgreSQL's server
# programs (initdb, pg_ctl), with which the tests start throwaway clusters of their own. Installs
# whichever is missing. Needs apt-get (Debian, Ubuntu) and root, or sudo.
set -eu
packages=""
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    packages="chromium chromium-driver"
fi
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
    packages="$packages postgresql"
fi
[ -n "$packages" ] || exit 0
as_root=""
[ "$(id -u)" -eq 0 ] || as_root="sudo"
$as_root apt-get update -qq
# shellcheck disable=SC2086  # one word per package
DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq $packages >/dev/null
echo "installed:$packages"
