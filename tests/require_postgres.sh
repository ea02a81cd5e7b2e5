#!/usr/bin/env bash
# tests/test_team.py runs an MLflow server on a real PostgreSQL. `make test` calls this
# first: on Debian/Ubuntu it installs the distribution's PostgreSQL once (15 on Debian 12),
# elsewhere it says what is missing and the rest of the suite still runs.
set -euo pipefail
if compgen -G "/usr/lib/postgresql/*/bin/initdb" > /dev/null; then
    exit 0
fi
if ! command -v apt-get > /dev/null; then
    echo "PostgreSQL not found under /usr/lib/postgresql and no apt-get here:" \
         "install PostgreSQL (15 or newer) for tests/test_team.py" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing PostgreSQL for tests/test_team.py (apt-get)" >&2
$SUDO apt-get update
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql
