# Sourced by scripts/test: Debian's Chromium for the dashboard's end-to-end tests
# (playwright-core drives it; a test tool's own browser download does not work on
# these machines). Installed from Debian's archive when missing, as root or through
# sudo. Debian replaces a package's version in place when it patches it, so the
# pin is the package and a lowest major version, checked after the install.
# Exports VIGIL_CHROMIUM, the browser to launch.
VIGIL_CHROMIUM="${VIGIL_CHROMIUM:-/usr/bin/chromium}"
CHROMIUM_MIN_MAJOR=120
if [ ! -x "$VIGIL_CHROMIUM" ]; then
  echo "$0: installing Debian's chromium for the dashboard's browser tests" >&2
  as_root=()
  [ "$(id -u)" = 0 ] || as_root=(sudo -n)
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
chromium_major=$("$VIGIL_CHROMIUM" --version 2>/dev/null | grep -oE '[0-9]+' | head -1)
if [ -z "$chromium_major" ] || [ "$chromium_major" -lt "$CHROMIUM_MIN_MAJOR" ]; then
  echo "$0: $VIGIL_CHROMIUM is missing or older than Chromium $CHROMIUM_MIN_MAJOR" >&2
  exit 1
fi
export VIGIL_CHROMIUM
