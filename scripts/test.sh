#!/usr/bin/env bash
# Runs every test. Installs what the tests need on first use and caches it:
#   - tansu 0.6.0, a Kafka-protocol broker, built once with cargo (~15 min on 2 cores) into
#     ~/.cache/deskwatch/tools (override with DESKWATCH_TOOLS).
#   - Debian's prometheus (prometheus, promtool), prometheus-alertmanager (alertmanager,
#     amtool), chromium (the web page tests), request-tracker5 with rt5-db-sqlite (a real
#     Request Tracker 5 for the live-source test, run by ../shared/rt/rt-instance.sh) and
#     haproxy (checks the compose stack's load balancer), with apt-get, when missing;
#   - openapi-spec-validator from PyPI (the OpenAPI test), with pip, when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS="${DESKWATCH_TOOLS:-$HOME/.cache/deskwatch/tools}"
if ! "$TOOLS/bin/tansu" --version 2>/dev/null | grep -q '0\.6\.0'; then
  echo "== installing tansu 0.6.0 into $TOOLS (once; about 15 minutes on 2 cores)"
  build="$HOME/.cache/deskwatch/tansu-build"
  CARGO_TARGET_DIR="$build" cargo install tansu --version 0.6.0 --locked \
    --features dynostore,libsql --root "$TOOLS"
  rm -rf "$build"
fi
export DESKWATCH_TANSU="$TOOLS/bin/tansu"

missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
command -v chromium >/dev/null || missing+=(chromium)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
[ -x /usr/sbin/rt-setup-database-5 ] || missing+=(request-tracker5 rt5-db-sqlite)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]} (Debian packages)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  # Request Tracker: no database set-up and no cron jobs at install (each test makes its own).
  printf '%s\n' 'request-tracker5 request-tracker5/dbconfig-install boolean false' \
    'request-tracker5 request-tracker5/install-cronjobs boolean false' | $SUDO debconf-set-selections
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The OpenAPI test validates /v1/openapi.json with openapi-spec-validator (PyPI).
if ! python3 -c 'import openapi_spec_validator' 2>/dev/null; then
  echo "== installing openapi-spec-validator (PyPI)"
  python3 -m pip install --quiet openapi-spec-validator \
    || python3 -m pip install --quiet --break-system-packages openapi-spec-validator
fi
# With the tools installed, their tests must run, never skip.
export DESKWATCH_REQUIRE_TOOLS=1
# With the broker installed, the Kafka tests must run, never skip.
export DESKWATCH_REQUIRE_KAFKA=1

# The shared data sets must be present in CI (tests that need them fail instead of skipping).
if [ "${CI:-}" = "true" ]; then export DESKWATCH_REQUIRE_DATA=1; fi
cargo test --all-targets --locked "$@"
