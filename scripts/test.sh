#!/usr/bin/env bash
# Installs everything the project needs into .venv, then lints, type-checks and runs the test suite.
# The one test command of the README; .ci/run runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'

# Browser tests need Debian's Chromium; install it when missing (root on CI machines).
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) \
    || echo "warning: could not install chromium; browser tests will be skipped"
fi

# The pgbouncer tests need Debian's pgbouncer (transaction pooling); install it when missing.
if ! command -v pgbouncer >/dev/null 2>&1 && [ ! -x /usr/sbin/pgbouncer ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get install -y -q pgbouncer >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q pgbouncer >/dev/null 2>&1)) \
    || echo "warning: could not install pgbouncer; pgbouncer tests will be skipped"
fi

# The tests need a PostgreSQL server: use the configured one, else start the machine's cluster.
if [ -z "${RELAY_TEST_DATABASE_URL:-}" ]; then
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
fi

.venv/bin/ruff check src tests
.venv/bin/mypy
.venv/bin/python -m pytest -q --durations=12 "$@"   # the slowest tests, to keep the suite well under 10 minutes
