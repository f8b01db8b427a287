/**
 * A PV domU on emu-xen, create → console marker → destroyed, wall time, and the harness's
 * own overhead inside it. Two ways, alternated so drift under TCG hits both alike:
 *   bare    — one dom0 shell script does it all and times itself (xl create -p, xl unpause,
 *             the marker polled in xenconsoled's guest log, xl destroy, xl list polled);
 *   harness — what the Xen suite does: the Xl driver over the persistent SSH shell, the cfg
 *             written from a typed spec, `xl console` over SSH as a Console, expect() on it.
 * Overhead = harness median − bare median (same guest, same steps). The bare script polls
 * every 200 ms (up to ~0.2 s late per wait, two waits); polling faster steals the one CPU
 * the guest boots on and makes the baseline slower than the harness. Also reported: the
 * round trip of one command through the harness's persistent SSH shell.
 * emu-xen is brought up in a private run dir under the shared QEMU lock, and taken down.
 * Run: npx tsx bench/xen-domu.bench.ts [iterations, default 3]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireLock, QEMU_SLOT_LOCK } from '../drivers/proc.js';
import { randomXenMac, uniqueDomainName, Xl, type XlPvSpec } from '../drivers/xl.js';
import { DOMU_READY_PREFIX, markerArgument, readyPattern } from '../images/contracts/xen-domu.js';
import { newMarker, openDomainConsole } from '../suites/xen/lifecycle.js';
import { parseLab } from '../targets/config.js';
import { emulatedLab, labDown, labUp } from '../targets/emulated/lab.js';
import { Host } from '../targets/host.js';

const n = Number(process.argv[2] ?? 3);
const runDir = await mkdtemp(join(tmpdir(), 'labrig-bench-xen-'));
const release = await acquireLock(QEMU_SLOT_LOCK, { timeoutMs: 60 * 60_000, what: 'xen-domu bench' });

interface Sample {
  createMs: number;
  markerMs: number;
  goneMs: number;
  totalMs: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

function spec(
  name: string,
  marker: string,
  p: NonNullable<NonNullable<ReturnType<typeof parseLab>['hosts'][number]['suites']['xen']>['pvGuest']>,
): XlPvSpec {
  return {
    type: 'pv',
    name,
    memoryMiB: p.memoryMiB,
    vcpus: p.vcpus,
    kernel: p.kernel,
    ramdisk: p.ramdisk,
    extra: `${p.extra} ${markerArgument(marker)}`,
    vifs: p.bridge ? [{ mac: randomXenMac(), bridge: p.bridge }] : [],
  };
}

/** The whole lifecycle in one dom0 script; dom0 times each phase itself (ms since create). */
function bareScript(cfg: string, name: string, marker: string): string {
  // busybox date has no %N: dom0's uptime, in 10 ms steps
  const ms = `awk '{printf "%d", $1 * 1000}' /proc/uptime`;
  const log = `/var/log/xen/console/guest-${name}.log`;
  return [
    `t0=$(${ms})`,
    `xl create -p ${cfg} >/dev/null 2>&1 || exit 1`,
    `t1=$(${ms})`,
    `xl unpause ${name}`,
    // dom0 has the only CPU the guest boots on: polling fast would slow the very boot it times
    `until grep -q '${DOMU_READY_PREFIX}${marker}' ${log} 2>/dev/null; do sleep 0.2; done`,
    `t2=$(${ms})`,
    `xl destroy ${name}`,
    `while xl list | grep -q ' ${name} \\| ${name}$'; do sleep 0.2; done`,
    `t3=$(${ms})`,
    'echo "bare $((t1-t0)) $((t2-t1)) $((t3-t2)) $((t3-t0))"',
  ].join('\n');
}

let host: Host | undefined;
try {
  await labUp({ runDir, hosts: ['emu-xen'], ports: { 'emu-xen': 20000 + Math.floor(Math.random() * 20000) } });
  const config = parseLab(emulatedLab({ runDir })).hosts.find((h) => h.name === 'emu-xen')!;
  const pv = config.suites.xen!.pvGuest!;
  host = new Host(config, { logDir: runDir });
  const xl = new Xl(host);
  await host.run('mkdir -p /tmp/labrig-xen');
  const rtt: number[] = [];
  for (let i = 0; i < 10; i++) rtt.push((await host.run('true')).ms);
  const bare: Sample[] = [];
  const harness: Sample[] = [];
  for (let i = 0; i < n; i++) {
    {
      const name = uniqueDomainName('bench-bare');
      const marker = newMarker();
      const cfg = `/tmp/labrig-xen/${name}.cfg`;
      await xl.writeConfig(cfg, spec(name, marker, pv));
      const r = await host.run(bareScript(cfg, name, marker), { timeoutMs: 300_000, check: true });
      const [createMs, markerMs, goneMs, totalMs] = /bare (\d+) (\d+) (\d+) (\d+)/.exec(r.stdout)!.slice(1).map(Number) as [
        number,
        number,
        number,
        number,
      ];
      bare.push({ createMs, markerMs, goneMs, totalMs });
    }
    {
      const name = uniqueDomainName('bench-harness');
      const marker = newMarker();
      const cfg = `/tmp/labrig-xen/${name}.cfg`;
      // The harness path starts with writing the cfg: it is part of what the suite does.
      const t0 = performance.now();
      await xl.writeConfig(cfg, spec(name, marker, pv));
      const created = await xl.create(cfg, { paused: true, timeoutMs: 300_000 });
      if (!created.ok) throw new Error(`xl create failed:\n${created.output.slice(-2000)}`);
      const t1 = performance.now();
      const console = await openDomainConsole(host, name, 'pv', join(runDir, `${name}-console.log`));
      await xl.unpause(name);
      await console.expect(readyPattern(marker), { from: 0, timeoutMs: 300_000 });
      const t2 = performance.now();
      await xl.destroy(name);
      await xl.waitGone(name, 60_000);
      const t3 = performance.now();
      await console.close();
      harness.push({ createMs: t1 - t0, markerMs: t2 - t1, goneMs: t3 - t2, totalMs: t3 - t0 });
    }
    process.stderr.write(
      `iteration ${i + 1}/${n}: bare ${(bare[i]!.totalMs / 1000).toFixed(1)} s, harness ${(harness[i]!.totalMs / 1000).toFixed(1)} s\n`,
    );
  }
  const row = (label: string, xs: Sample[]) =>
    `${label.padEnd(8)} create ${median(xs.map((x) => x.createMs))
      .toFixed(0)
      .padStart(6)} ms  → marker ${median(xs.map((x) => x.markerMs))
      .toFixed(0)
      .padStart(6)} ms  → destroyed ${median(xs.map((x) => x.goneMs))
      .toFixed(0)
      .padStart(5)} ms  total ${median(xs.map((x) => x.totalMs))
      .toFixed(0)
      .padStart(6)} ms`;
  const overhead = median(harness.map((x) => x.totalMs)) - median(bare.map((x) => x.totalMs));
  process.stdout.write(`PV domU on emu-xen (TCG), medians of ${n}:\n${row('bare', bare)}\n${row('harness', harness)}\n`);
  process.stdout.write(
    `harness overhead: ${overhead.toFixed(0)} ms (${((overhead / median(harness.map((x) => x.totalMs))) * 100).toFixed(1)} % of the harness wall time)\n`,
  );
  process.stdout.write(`one command through the persistent SSH shell: median ${median(rtt)} ms\n`);
  process.stdout.write(
    `samples (ms): ${JSON.stringify({ bare, harness: harness.map((h) => Object.fromEntries(Object.entries(h).map(([k, v]) => [k, Math.round(v)]))) })}\n`,
  );
} finally {
  await host?.close();
  await labDown({ runDir }).catch(() => {});
  await rm(runDir, { recursive: true, force: true });
  await release();
}
