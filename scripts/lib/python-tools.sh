# Sourced by scripts/test, scripts/bench and scripts/compare-prowler: the pinned
# Python peers in a virtualenv outside the clone (reused while the pins are
# unchanged). awscurl calls the running service as a user would, schemathesis fuzzes
# it against its OpenAPI document, moto_server emulates the AWS APIs the response
# actions and the compliance collector call.
# Exports VIGIL_PY_BIN, the virtualenv's bin directory, and defines pinned_venv.
command -v python3 >/dev/null 2>&1 || { echo "$0: 'python3' is required but not installed" >&2; exit 1; }

# pinned_venv DIR "PIN …": (re)makes the virtualenv DIR holding exactly these pins.
pinned_venv() {
  local dir="$1" pins="$2"
  if [ ! -f "$dir/pins" ] || [ "$(cat "$dir/pins")" != "$pins" ]; then
    echo "$0: installing $pins into $dir" >&2
    rm -rf "$dir"
    python3 -m venv "$dir"
    # Split into words without globbing (`moto[server]` is a glob pattern).
    local words
    read -ra words <<< "$pins"
    "$dir/bin/pip" install --quiet --disable-pip-version-check "${words[@]}"
    echo "$pins" > "$dir/pins"
  fi
}

VENV="${VIGIL_VENV:-$HOME/.cache/vigil/venv}"
pinned_venv "$VENV" "awscurl==0.44 schemathesis==4.32.5 moto[server]==5.2.5 cargo-lambda==1.9.2 cfn-lint==1.58.0"
export VIGIL_PY_BIN="$VENV/bin"
