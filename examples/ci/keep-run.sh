#!/usr/bin/env bash
# Keeps a merged CI run as reports/runs/<runId>/, the way cli/archive.ts keeps a run made on one
# machine, so that `labrig compare`, `labrig trend`, the trend charts and `labrig dossier` find it;
# then keeps only the newest $LABRIG_KEEP_RUNS runs (default 60, Allure's historyLimit), and
# writes the id of the run before this one to <out dir>/previous-run-id (empty when none), for
# `labrig compare`.
#
#   bash examples/ci/keep-run.sh <runId> <shard out dir>...     (after `labrig report` of the shards)
#
# From each shard: its console and shell logs (under logs/<shard>/: two shards may have run tests
# on the same host) and its junit.xml; lab.json is the one the shards' own `labrig run` archived.
set -euo pipefail
cd "$(dirname "$0")/../.."

run_id=${1:?usage: keep-run.sh <runId> <shard out dir>...}
shift
out=${LABRIG_OUT_DIR:-reports/out}
runs=${LABRIG_RUNS_DIR:-reports/runs}
keep=${LABRIG_KEEP_RUNS:-60}
dir="$runs/$run_id"

mkdir -p "$dir/logs"
for f in allure-results-merged findings.json manifest.json trends.html; do
  if [ -e "$out/$f" ]; then cp -r "$out/$f" "$dir/"; fi
done
for shard in "$@"; do
  name=$(basename "$shard")
  if [ -d "$shard/logs/$run_id" ]; then
    mkdir -p "$dir/logs/$name"
    cp -r "$shard/logs/$run_id/." "$dir/logs/$name/"
  fi
  if [ -f "$shard/junit.xml" ]; then cp "$shard/junit.xml" "$dir/junit-$name.xml"; fi
done
if [ ! -f "$dir/lab.json" ]; then
  echo "keep-run: no lab.json came with the shards: compare and trend work, labrig dossier will refuse this run" >&2
fi

# Oldest first by the manifest's creation time (run ids need not sort by date).
node - "$runs" "$keep" "$run_id" "$out/previous-run-id" <<'JS'
const fs = require('node:fs');
const path = require('node:path');
const [runs, keep, runId, previousFile] = process.argv.slice(2);
const createdAt = (d) => {
  try { return JSON.parse(fs.readFileSync(path.join(runs, d, 'manifest.json'), 'utf8')).createdAt ?? ''; } catch { return ''; }
};
const dirs = fs.readdirSync(runs, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
dirs.sort((a, b) => createdAt(a).localeCompare(createdAt(b)));
for (const d of dirs.slice(0, Math.max(0, dirs.length - Number(keep)))) {
  fs.rmSync(path.join(runs, d), { recursive: true, force: true });
  console.error(`keep-run: pruned ${d} (keeping the newest ${keep})`);
}
const others = dirs.filter((d) => d !== runId && fs.existsSync(path.join(runs, d)));
fs.writeFileSync(previousFile, others.length ? `${others[others.length - 1]}\n` : '');
JS
echo "kept: $dir"
