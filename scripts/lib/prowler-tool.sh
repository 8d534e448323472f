# Sourced by scripts/compare-prowler after python-tools.sh: Prowler from PyPI, pinned,
# in a virtualenv of its own (its pinned boto3 and moto's must not meet); its
# install takes about ten minutes on two cores. Exports VIGIL_PROWLER_BIN.
pinned_venv "${VIGIL_PROWLER_VENV:-$HOME/.cache/vigil/prowler}" "prowler==5.46.0"
export VIGIL_PROWLER_BIN="${VIGIL_PROWLER_VENV:-$HOME/.cache/vigil/prowler}/bin"
