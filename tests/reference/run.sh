#!/usr/bin/env bash
# Reference-tools check: validates fixtures and the bridge's real output
# with the upstream Python tools (IntelMQ, idea-format, stix2-validator).
#
#   tests/reference/run.sh
#
# Environment:
#   REFERENCE_VENV  venv to create or reuse (default: $REPO/target/reference-venv)
#   BRIDGE          bridge binary (default: $REPO/target/release/intelmq-bridge;
#                   it is not built here)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="${REFERENCE_VENV:-$REPO/target/reference-venv}"
BRIDGE="${BRIDGE:-$REPO/target/release/intelmq-bridge}"

# Pinned reference tools. Bump deliberately, never float.
PACKAGES=(
  "intelmq==3.5.0"
  "idea-format==0.1.15"
  "stix2-validator==3.3.2"
  # IntelMQ's AMQP pipeline (.ci/run drives serve with it)
  "pika==1.4.4"
  # intelmq 3.5.0 imports pkg_resources (lib/message.py) but does not
  # depend on setuptools; setuptools >= 82 no longer ships pkg_resources
  # and Python >= 3.12 venvs have no setuptools at all.
  "setuptools==80.10.2"
)

if ! command -v python3 >/dev/null 2>&1; then
  echo "skipped: no python3"
  exit 0
fi

# Reuse the venv only if it already holds exactly the pinned versions.
venv_ok() {
  [ -x "$VENV/bin/python" ] || return 1
  local installed
  installed="$("$VENV/bin/python" -m pip freeze --all --disable-pip-version-check 2>/dev/null)" || return 1
  local spec name
  for spec in "${PACKAGES[@]}"; do
    name="${spec%%==*}"
    # pip freeze may print the name with '_' or '-'; compare case-insensitively.
    grep -qix "${name//-/[-_]}==${spec#*==}" <<<"$installed" || return 1
  done
}

if ! venv_ok; then
  echo "reference venv: installing ${PACKAGES[*]} into $VENV"
  python3 -m venv "$VENV" || {
    echo "reference venv: 'python3 -m venv $VENV' failed (on Debian/Ubuntu: apt-get install python3-venv)" >&2
    exit 1
  }
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PACKAGES[@]}" || {
    echo "reference venv: pip install failed (is PyPI reachable?)" >&2
    exit 1
  }
fi

export BRIDGE REPO
cd "$HERE"
exec "$VENV/bin/python" check.py
