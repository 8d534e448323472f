# Sourced by scripts/test and scripts/bench: the pinned Python peers in a
# virtualenv outside the clone (reused while the pins are unchanged). awscurl calls
# the running service as a user would, schemathesis fuzzes it against its OpenAPI
# document, moto_server emulates the AWS APIs the response actions call.
# Exports VIGIL_PY_BIN, the virtualenv's bin directory.
command -v python3 >/dev/null 2>&1 || { echo "$0: 'python3' is required but not installed" >&2; exit 1; }
VENV="${VIGIL_VENV:-$HOME/.cache/vigil/venv}"
PY_PINS="awscurl==0.44 schemathesis==4.32.5 moto[server]==5.2.5"
if [ ! -f "$VENV/pins" ] || [ "$(cat "$VENV/pins")" != "$PY_PINS" ]; then
  echo "$0: installing $PY_PINS into $VENV" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  # Split into words without globbing (`moto[server]` is a glob pattern).
  read -ra pins <<< "$PY_PINS"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}"
  echo "$PY_PINS" > "$VENV/pins"
fi
export VIGIL_PY_BIN="$VENV/bin"
