#!/usr/bin/env bash
# Runs every test. Installs what the tests need on first use and caches it.
# Today the suite needs only the Rust toolchain; the Kafka (tansu), Prometheus, Alertmanager
# and Chromium installs join here with the issues that bring those tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# The shared data sets must be present in CI (tests that need them fail instead of skipping).
if [ "${CI:-}" = "true" ]; then export DESKWATCH_REQUIRE_DATA=1; fi
cargo test --all-targets --locked "$@"
