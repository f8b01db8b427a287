#!/usr/bin/env bash
# The harness's own tests: unit tests and integration tests on real sshd, ptys and QEMU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash bin/setup.sh
npx tsc --noEmit -p .
exec npx playwright test --config test/playwright.config.ts "$@"
