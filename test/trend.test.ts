/**
 * Trends across kept runs: run directories laid out as cli/archive.ts keeps them (findings.json
 * and manifest.json as reports/finalize.ts writes them, with the keys the suites record — the
 * root-port ceiling per machine type, the pmem VM blackout and kexec time, Xen domU create time,
 * armhf boot time), a QEMU upgrade and a kernel change between nights. Then the chart: one point
 * per run with that run's value; the page: nothing loaded from outside; and `labrig trend`.
 */

import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from '@playwright/test';
import { execa } from 'execa';
import { findExternalLoadsInHtml } from '../reports/external.js';
import { buildTrends, plottable, versionChanges } from '../reports/trend.js';
import { sparkline } from '../reports/trend-cli.js';
import { TRENDS_PAGE, writeTrendsPage } from '../reports/trend-page.js';
import { readKeptRuns } from '../reports/trend-runs.js';
import { trendSvg } from '../reports/trend-svg.js';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
let work = '';
let runsDir = '';

interface Night {
  runId: string;
  createdAt: string;
  qemu: string;
  kernel: string;
  ceilingNewest: number | string;
  blackoutMs: number;
  kexecMs: number;
  domuCreateS: number;
  cpuMhz: number | string;
}

const nights: Night[] = [
  {
    runId: '2026-07-20T02-00-00-000Z-aa11',
    createdAt: '2026-07-20T02:41:07.000Z',
    qemu: '7.2.0',
    kernel: '6.1.0-27-arm64',
    ceilingNewest: 15,
    blackoutMs: 41200,
    kexecMs: 9100,
    domuCreateS: 3.2,
    cpuMhz: 2600,
  },
  {
    runId: '2026-07-21T02-00-00-000Z-bb22',
    createdAt: '2026-07-21T02:39:55.000Z',
    qemu: '7.2.0',
    kernel: '6.1.0-28-arm64',
    ceilingNewest: 15,
    blackoutMs: 39800,
    kexecMs: 8800,
    domuCreateS: 3.4,
    cpuMhz: 'unavailable: no /proc/cpuinfo MHz',
  },
  {
    runId: '2026-07-22T02-00-00-000Z-cc33',
    createdAt: '2026-07-22T02:44:12.000Z',
    qemu: '8.2.1',
    kernel: '6.1.0-28-arm64',
    ceilingNewest: 'none-below-28',
    blackoutMs: 52300,
    kexecMs: 9400,
    domuCreateS: 2.9,
    cpuMhz: 2600,
  },
];

/** What finalize writes and archiveRun keeps, for one night of the lab. */
async function keepRun(
  dir: string,
  n: Night,
  extra: { suite: string; host: string; key: string; value: string | number }[] = [],
): Promise<void> {
  const run = join(dir, n.runId);
  await mkdir(run, { recursive: true });
  const t = (suite: string, name: string) => ({ test: `${suite}.spec.ts › ${name}`, status: 'passed' });
  const findings = [
    {
      suite: 'pcie-root-ports',
      host: 'emu-arm64',
      key: 'ceiling_newest',
      value: n.ceilingNewest,
      ...t('pcie-root-ports', 'ceiling with machine type newest'),
    },
    {
      suite: 'pcie-root-ports',
      host: 'emu-arm64',
      key: 'wall_s_newest',
      value: 131.4,
      unit: 's',
      ...t('pcie-root-ports', 'ceiling with machine type newest'),
    },
    {
      suite: 'pcie-root-ports',
      host: 'emu-arm64',
      key: 'qemu',
      value: n.qemu,
      ...t('pcie-root-ports', 'ceiling with machine type newest'),
    },
    {
      suite: 'snapshot-kexec',
      host: 'emu-x86-pmem',
      key: 'pmem.vm_blackout_ms',
      value: n.blackoutMs,
      unit: 'ms',
      ...t('snapshot-kexec', 'pmem: save, kexec, restore'),
    },
    {
      suite: 'snapshot-kexec',
      host: 'emu-x86-pmem',
      key: 'pmem.kexec_ms',
      value: n.kexecMs,
      unit: 'ms',
      ...t('snapshot-kexec', 'pmem: save, kexec, restore'),
    },
    { suite: 'xen', host: 'emu-xen', key: 'domu_create_s', value: n.domuCreateS, unit: 's', ...t('xen', 'a PV domU boots') },
    {
      suite: 'host-facts',
      host: 'emu-arm64',
      key: 'cpu_mhz',
      value: n.cpuMhz,
      ...(typeof n.cpuMhz === 'number' ? { unit: 'MHz' } : {}),
      ...t('host-facts', 'cpu'),
    },
    ...extra.map((e) => ({ ...e, test: 'x', status: 'passed' })),
  ];
  const facts = (kernel: string, more: Record<string, string | null>) => ({
    kernel,
    qemu: n.qemu,
    libvirt: '9.0.0',
    edk2: '2022.11-6+deb12u2',
    xen: null,
    ...more,
  });
  const manifest = {
    runId: n.runId,
    gitRevision: `rev-${n.runId.slice(-4)}`,
    createdAt: n.createdAt,
    hosts: {
      'emu-arm64': { facts: facts(n.kernel, {}), test: 'host-facts.spec.ts › facts' },
      'emu-x86-pmem': { facts: facts('6.1.0-28-amd64', {}), test: 'host-facts.spec.ts › facts' },
      'emu-xen': { facts: facts('6.1.0-28-amd64', { xen: '4.17.6-pre' }), test: 'host-facts.spec.ts › facts' },
    },
    tests: 6,
  };
  await writeFile(join(run, 'findings.json'), `${JSON.stringify(findings, null, 2)}\n`);
  await writeFile(join(run, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
}

/** The circles of one chart, as (run, value) pairs, in drawing order. */
function pointsOf(svg: string): { run: string; value: number; bound?: string }[] {
  return [...svg.matchAll(/<circle class="point"[^>]*data-run="([^"]+)" data-value="([^"]+)"(?: data-bound="([^"]+)")?/g)].map((m) => ({
    run: m[1]!,
    value: Number(m[2]),
    ...(m[3] ? { bound: m[3] } : {}),
  }));
}

/** Through bin/labrig.mjs, as a user types it. */
async function labrig(...args: string[]) {
  return execa(process.execPath, [join(repoRoot, 'bin', 'labrig.mjs'), ...args], { cwd: repoRoot, reject: false, timeout: 60_000 });
}

/** The same command line through cli/main.ts in this process: what bin/labrig.mjs runs, without a node start each time. */
async function labrigHere(...args: string[]): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const { main } = await import('../cli/main.js');
  const out = { stdout: '', stderr: '' };
  const writes = { stdout: process.stdout.write, stderr: process.stderr.write };
  process.stdout.write = ((chunk: string) => ((out.stdout += String(chunk)), true)) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string) => ((out.stderr += String(chunk)), true)) as typeof process.stderr.write;
  try {
    return { exitCode: await main(['node', 'labrig', ...args]), ...out };
  } finally {
    process.stdout.write = writes.stdout;
    process.stderr.write = writes.stderr;
  }
}

test.describe.configure({ mode: 'serial' });

test.beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'labrig-trend-'));
  runsDir = join(work, 'runs');
  // Written newest first: the order comes from the manifests, not from the directory listing.
  for (const n of [...nights].reverse()) await keepRun(runsDir, n);
  // Something that is not a run, and a run whose manifest is broken: left out, not fatal.
  await mkdir(join(runsDir, 'not-a-run'), { recursive: true });
  await mkdir(join(runsDir, 'broken'), { recursive: true });
  await writeFile(join(runsDir, 'broken', 'findings.json'), '[]');
  await writeFile(join(runsDir, 'broken', 'manifest.json'), '{ truncated');
});

test.afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

test('the kept runs become one series per suite/host/key, oldest run first, with the host versions', async () => {
  const kept = await readKeptRuns(runsDir);
  expect(kept.warnings).toEqual([expect.stringMatching(/^run broken left out: cannot read the manifest .*broken\/manifest\.json/)]);
  const trends = buildTrends(kept.runs);
  expect(trends.runs.map((r) => r.runId)).toEqual(nights.map((n) => n.runId));
  const ceiling = trends.series.find((s) => s.key === 'ceiling_newest')!;
  expect(ceiling.points.map((p) => [p.recorded, p.value, p.bound ?? null, p.versions.qemu])).toEqual([
    [15, 15, null, '7.2.0'],
    [15, 15, null, '7.2.0'],
    ['none-below-28', 29, 'at-least', '8.2.1'],
  ]);
  expect(versionChanges(ceiling)).toEqual([
    { at: 1, what: ['kernel 6.1.0-27-arm64 → 6.1.0-28-arm64'] },
    { at: 2, what: ['qemu 7.2.0 → 8.2.1'] },
  ]);
  const create = trends.series.find((s) => s.key === 'domu_create_s')!;
  expect(create).toMatchObject({ suite: 'xen', host: 'emu-xen', unit: 's' });
  expect(create.points.map((p) => p.versions.xen)).toEqual(['4.17.6-pre', '4.17.6-pre', '4.17.6-pre']);
  expect([plottable('none-boots-at-3'), plottable('12'), plottable('unavailable: x'), plottable(true)]).toEqual([
    { value: 2, bound: 'at-most' },
    { value: 12 },
    null,
    null,
  ]);
});

test("the chart has one point per run, at that run's value, and loads nothing", async () => {
  const trends = buildTrends((await readKeptRuns(runsDir)).runs);
  const svgOf = (key: string) => trendSvg(trends.series.find((s) => s.key === key)!, trends.runs.length);

  const blackout = svgOf('pmem.vm_blackout_ms');
  expect(pointsOf(blackout)).toEqual(nights.map((n) => ({ run: n.runId, value: n.blackoutMs })));
  // Higher values are drawn higher: SVG y grows downwards.
  const ys = [...blackout.matchAll(/<circle class="point" cx="[\d.]+" cy="([\d.]+)"/g)].map((m) => Number(m[1]));
  expect(ys[2]!).toBeLessThan(ys[0]!);
  expect(ys[0]!).toBeLessThan(ys[1]!);
  expect(blackout).toContain('<polyline points="');
  expect(blackout).toContain('qemu 7.2.0 → 8.2.1');

  expect(pointsOf(svgOf('ceiling_newest')).map((p) => [p.value, p.bound ?? null])).toEqual([
    [15, null],
    [15, null],
    [29, 'at-least'],
  ]);
  // A run that recorded words where a number was expected is marked, not drawn as a value.
  const mhz = svgOf('cpu_mhz');
  expect(pointsOf(mhz).map((p) => p.run)).toEqual([nights[0]!.runId, nights[2]!.runId]);
  expect(mhz).toContain(`class="no-value" d=`);
  expect(mhz).toContain('unavailable: no /proc/cpuinfo MHz');

  for (const svg of [blackout, mhz]) {
    expect(findExternalLoadsInHtml(svg, 'chart.svg')).toEqual([]);
    expect(svg.match(/\b(?:href|src)\s*=/g)).toBeNull();
  }
});

test('what a host reported is text in the chart, never markup', async () => {
  const dir = join(work, 'hostile-runs');
  await keepRun(dir, { ...nights[0]!, qemu: '<script>alert(1)</script>' }, [
    { suite: 'pcie-root-ports', host: 'emu-arm64', key: 'ceiling_"><image href="https://x.example/a.png"/>', value: 3 },
  ]);
  const page = join(work, 'hostile.html');
  await writeTrendsPage(page, { runsDir: dir });
  const html = await readFile(page, 'utf8');
  expect(html).not.toContain('<script');
  expect(html).not.toContain('<image');
  expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
  expect(findExternalLoadsInHtml(html, 'hostile.html')).toEqual([]);
});

test('the page: every numeric finding charted, the current run as the newest point, nothing from outside', async () => {
  const page = join(work, 'out', TRENDS_PAGE);
  const current = {
    runId: 'tonight',
    createdAt: '2026-07-23T02:40:00.000Z',
    hosts: {},
    findings: [{ suite: 'snapshot-kexec', host: 'emu-x86-pmem', key: 'pmem.vm_blackout_ms', value: 40100, unit: 'ms' }],
  };
  const made = await writeTrendsPage(page, { runsDir, current });
  expect(made).toMatchObject({ runs: 4, charts: 6 });
  const html = await readFile(page, 'utf8');
  expect(findExternalLoadsInHtml(html, TRENDS_PAGE)).toEqual([]);
  expect(html).not.toMatch(/<script|<link|<iframe|<img|@import|url\(/i);
  const figures = [...html.matchAll(/<figure data-series="([^"]+)">([\s\S]*?)<\/figure>/g)].map((m) => [m[1]!, m[2]!] as const);
  expect(figures.map(([id]) => id).sort()).toEqual([
    'host-facts/emu-arm64/cpu_mhz',
    'pcie-root-ports/emu-arm64/ceiling_newest',
    'pcie-root-ports/emu-arm64/wall_s_newest',
    'snapshot-kexec/emu-x86-pmem/pmem.kexec_ms',
    'snapshot-kexec/emu-x86-pmem/pmem.vm_blackout_ms',
    'xen/emu-xen/domu_create_s',
  ]);
  const blackout = figures.find(([id]) => id.endsWith('vm_blackout_ms'))![1];
  expect(pointsOf(blackout)).toEqual([...nights.map((n) => ({ run: n.runId, value: n.blackoutMs })), { run: 'tonight', value: 40100 }]);

  // A runs directory that cannot be read leaves the report its page, with this run alone on it.
  const lone = await writeTrendsPage(join(work, 'lone.html'), { runsDir: join(runsDir, nights[0]!.runId, 'findings.json'), current });
  expect(lone).toMatchObject({
    runs: 1,
    charts: 1,
    warnings: [expect.stringContaining('trend charts without the kept runs: cannot read the runs directory')],
  });

  // As the dossier of the second night shows it: the trend up to that run, no later.
  const upTo = join(work, 'upto.html');
  expect(await writeTrendsPage(upTo, { runsDir, upTo: nights[1]!.runId })).toMatchObject({ runs: 2 });
  expect(
    pointsOf(await readFile(upTo, 'utf8'))
      .filter((p) => p.value === 41200 || p.value === 39800 || p.value === 52300)
      .map((p) => p.value),
  ).toEqual([41200, 39800]);
});

test('labrig trend: a table of run → value with the host versions, and a sparkline', async () => {
  const r = await labrig('trend', 'pmem.vm_blackout_ms', '--runs', runsDir);
  expect(r.exitCode, r.stderr).toBe(0);
  const lines = r.stdout.trimEnd().split('\n');
  expect(lines[0]).toBe('snapshot-kexec / emu-x86-pmem / pmem.vm_blackout_ms (ms)');
  expect(lines[1]).toMatch(/^ {2}run +date +value +qemu +kernel$/);
  expect(lines.slice(2, 5).map((l) => l.trim().split(/ {2,}/))).toEqual(
    nights.map((n) => [n.runId, n.createdAt.slice(0, 16).replace('T', ' '), `${n.blackoutMs} ms`, n.qemu, '6.1.0-28-amd64']),
  );
  expect(lines[5]).toBe('  ▂▁█  min 39800, max 52300, last 52300 ms (3 of 3 runs)');
  expect(r.stderr).toContain('warning: run broken left out');

  const ceiling = await labrigHere('trend', 'ceiling_newest', '--host', 'emu-arm64', '--suite', 'pcie-root-ports', '--runs', runsDir);
  expect(ceiling.exitCode, ceiling.stderr).toBe(0);
  expect(ceiling.stdout).toMatch(/2026-07-22T02-00-00-000Z-cc33 +2026-07-22 02:44 +none-below-28 \(≥ 29\) +8\.2\.1 +6\.1\.0-28-arm64/);
  expect(ceiling.stdout).toContain('  ▁▁█  min 15, max 29');

  // A word among the numbers is a dot in the sparkline; a key with no number is a table alone.
  expect((await labrigHere('trend', 'cpu_mhz', '--runs', runsDir)).stdout).toContain('  ▄·▄  min 2600, max 2600');
  const qemu = await labrigHere('trend', 'qemu', '--runs', runsDir);
  expect(qemu.exitCode).toBe(0);
  expect(qemu.stdout).toContain('(not a number: no sparkline; 3 of 3 runs)');
});

test('labrig trend: an unknown key, host or suite, or no runs, is exit 2 with what is known', async () => {
  const unknown = await labrig('trend', 'vm_blackout', '--runs', runsDir);
  expect(unknown.exitCode).toBe(2);
  expect(unknown.stdout).toBe('');
  expect(unknown.stderr).toContain('labrig trend: no finding "vm_blackout" in 3 runs; known keys:\n');
  for (const key of ['ceiling_newest', 'pmem.vm_blackout_ms', 'domu_create_s', 'qemu']) expect(unknown.stderr).toContain(key);

  const elsewhere = await labrigHere('trend', 'domu_create_s', '--host', 'emu-arm64', '--runs', runsDir);
  expect(elsewhere.exitCode).toBe(2);
  expect(elsewhere.stderr).toContain(
    'no finding "domu_create_s" in 3 runs for host emu-arm64 (recorded by xen/emu-xen); known keys for host emu-arm64:',
  );
  expect(elsewhere.stderr).not.toMatch(/known keys[^\n]*\n[^\n]*pmem\.kexec_ms/);

  const host = await labrigHere('trend', 'ceiling_newest', '--host', 'kunpeng920', '--runs', runsDir);
  expect(host.exitCode).toBe(2);
  expect(host.stderr).toContain('no host "kunpeng920" in these runs (--host); known: emu-arm64, emu-x86-pmem, emu-xen');

  const empty = await labrigHere('trend', 'ceiling_newest', '--runs', join(work, 'no-runs-here'));
  expect(empty.exitCode).toBe(2);
  expect(empty.stderr).toContain(`no kept runs under ${join(work, 'no-runs-here')}`);
});

test('a sparkline leaves a gap for a run that did not record the finding', () => {
  const s = {
    suite: 's',
    host: 'h',
    key: 'k',
    points: [0, 3].map((runIndex, i) => ({ runIndex, runId: `r${runIndex}`, createdAt: null, recorded: i, value: i, versions: {} })),
  };
  expect(sparkline(s, 4)).toBe('▁  █');
});
