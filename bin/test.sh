#!/usr/bin/env bash
# The harness's own tests: unit tests and integration tests on real sshd, ptys and QEMU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash bin/setup.sh
npx tsc --noEmit -p .
npx biome check .   # the linter and formatter (biome.json)
exec npx playwright test --config test/playwright.config.ts "$@"
