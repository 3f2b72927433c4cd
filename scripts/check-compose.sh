#!/usr/bin/env bash
# Validates docker-compose.yml without a Docker engine, with docker-compose from PyPI.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${STACK_DIR:-$ROOT/.stack}/compose-venv"
if [ ! -x "$VENV/bin/docker-compose" ]; then
  echo "[compose] installing docker-compose from PyPI into $VENV"
  python3 -m venv "$VENV"
  # docker-compose 1.x needs PyYAML 5, whose source build breaks under Cython 3: build it with an
  # older Cython first.
  "$VENV/bin/pip" install --quiet "cython<3" wheel setuptools
  "$VENV/bin/pip" install --quiet --no-build-isolation "pyyaml==5.4.1"
  "$VENV/bin/pip" install --quiet docker-compose
fi
cd "$ROOT"
"$VENV/bin/docker-compose" -f docker-compose.yml config -q
# The profiles, each with the variables file it is started with.
for profile in demo cluster; do
  "$VENV/bin/docker-compose" -f docker-compose.yml --env-file "scripts/compose/$profile.env" \
    --profile "$profile" config -q
done
"$VENV/bin/docker-compose" -f docker-compose.yml --profile observability --profile tools config -q
echo "[compose] docker-compose.yml is valid, with profiles demo, cluster, observability and tools"
