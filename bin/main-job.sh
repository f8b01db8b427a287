#!/usr/bin/env bash
# The main job: set up, bring the emulated lab up, run every suite, write the report.
# Extra arguments go to `playwright test` (e.g. --project=emu-mini --grep @facts).
set -euo pipefail
cd "$(dirname "$0")/.."
bash bin/setup.sh
exec node bin/labrig.mjs run "$@"
