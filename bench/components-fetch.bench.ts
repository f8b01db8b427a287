/**
 * `labrig components fetch` cold and cached: a candidate QEMU (and libvirt) from
 * bookworm-backports into a fresh build directory, then the same request again.
 * Cold includes `apt-get update` of the private lists, the downloads, the dependency closure,
 * `dpkg-deb -x` and the ldd/--version check of every binary.
 * Run: npx tsx bench/components-fetch.bench.ts [qemu=10.0.2] [libvirt=11.3.0]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetchComponents, parseComponentVersions } from '../targets/components-fetch.js';

const versions = parseComponentVersions(process.argv.slice(2).length ? process.argv.slice(2) : ['qemu=10.0.2', 'libvirt=11.3.0']);
const into = await mkdtemp(join(tmpdir(), 'labrig-bench-components-'));
try {
  const t0 = performance.now();
  const cold = await fetchComponents({ versions, into, say: (l) => process.stderr.write(`  ${l}\n`) });
  const coldS = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  const warm = await fetchComponents({ versions, into });
  const warmS = (performance.now() - t1) / 1000;
  console.log(
    `components ${Object.entries(versions)
      .map(([c, v]) => `${c}=${v}`)
      .join(' ')}: ${cold.build.packages.length} packages`,
  );
  console.log(`  cold:   ${coldS.toFixed(1)} s (cached: ${cold.cached})`);
  console.log(`  cached: ${warmS.toFixed(2)} s (cached: ${warm.cached})`);
} finally {
  await rm(into, { recursive: true, force: true });
}
