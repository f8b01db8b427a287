/**
 * labrig compare: the regression rules on their own, then three archived runs made the real
 * way (test/fixtures/runs/: genuine Allure results → finalizeReport → archiveRun) compared
 * through the CLI — A the reference, B with the machine type changed (ceiling 15 →
 * none-below-28, a newer QEMU, a lab failure), C with a regression (ceiling down, slower, a panic).
 */

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from '@playwright/test';
import { execa } from 'execa';
import {
  type Comparison,
  compareFindings,
  compareTests,
  compareVersions,
  judgeFinding,
  machineTypeGone,
  type TestOutcome,
} from '../reports/compare.js';
import { findingRows, formatFindingRows, scopeSnapshot } from '../reports/compare-scope.js';
import type { RecordedFinding } from '../reports/evidence.js';
import { loadRunSnapshot, resolveRunDir } from '../reports/run-dir.js';
import { makeRun } from './fixtures/runs/make-run.js';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));

test.describe('regression rules', () => {
  const verdict = (key: string, before: string | number, after: string | number, unit?: string) =>
    judgeFinding(key, unit, before, after).verdict;

  test('a root-port ceiling: higher is better, none-below-N counts as more than N', () => {
    expect(verdict('ceiling_newest', 15, 'none-below-28')).toBe('improved');
    expect(verdict('ceiling_newest', 'none-below-28', 15)).toBe('regressed');
    expect(verdict('ceiling_newest', 'none-below-28', 28)).toBe('regressed');
    expect(verdict('ceiling', 12, 15)).toBe('improved');
    expect(verdict('ceiling_virt-2.12', 15, 14)).toBe('regressed');
    // Both only bound the ceiling from below, or one lies inside the other's range: no order.
    expect(verdict('ceiling_newest', 'none-below-28', 30)).toBe('changed');
    expect(verdict('ceiling_newest', 'none-below-28', 'none-below-32')).toBe('changed');
    expect(verdict('ceiling_newest', 'none-boots-at-1', 3)).toBe('improved');
    expect(verdict('ceiling_newest', 15, 'none-boots-at-1')).toBe('regressed');
    expect(verdict('ceiling_newest', 15, 'non-monotonic-near-12')).toBe('changed');
  });

  test('a duration: lower is better, beyond 25 % of A and at least 1 s', () => {
    expect(verdict('wall_s_newest', 100, 124, 's')).toBe('within-tolerance');
    expect(verdict('wall_s_newest', 100, 126, 's')).toBe('regressed');
    expect(verdict('wall_s_newest', 100, 70, 's')).toBe('improved');
    expect(verdict('reboot_to_ssh_s', 2, 2.9)).toBe('within-tolerance');
    expect(verdict('reboot_to_ssh_s', 2, 3.1)).toBe('regressed');
    expect(verdict('vm_blackout_ms', 5000, 7000)).toBe('regressed');
    expect(verdict('libvirtd_restart_ms_max', 900, 1800)).toBe('within-tolerance');
    expect(verdict('vm_blackout', 5000, 3000, 'ms')).toBe('improved');
    expect(verdict('cpu_mhz', 'unavailable: /dev/mem', 2000, 'MHz')).toBe('changed');
  });

  test('unknown keys change, they never regress', () => {
    expect(verdict('probes_newest', 7, 9)).toBe('changed');
    expect(verdict('harness_share_newest', 0.1, 0.9)).toBe('changed');
    expect(verdict('reboot_end_state', 'shut off', 'running')).toBe('changed');
  });

  test('findings matched on suite+host+key; appeared, disappeared, recorded twice', () => {
    const f = (key: string, value: string | number, host = 'emu-arm64'): RecordedFinding => ({
      suite: 'pcie-root-ports',
      host,
      key,
      value,
      test: 't',
      status: 'passed',
    });
    const { diffs, unchanged } = compareFindings(
      [f('qemu', '7.2.0'), f('qemu', '7.2.0'), f('upper_bound', 28), f('ceiling_newest', 15), f('ceiling_newest', 15, 'kunpeng')],
      [f('qemu', '7.2.0'), f('upper_bound', 28), f('upper_bound', 32), f('ceiling_newest', 15), f('probes_newest', 7)],
    );
    expect(unchanged).toBe(2);
    expect(diffs.map((d) => [d.host, d.key, d.before, d.after, d.change, d.verdict])).toEqual([
      ['emu-arm64', 'probes_newest', undefined, 7, 'appeared', 'changed'],
      ['emu-arm64', 'upper_bound', 28, '28 | 32', 'changed', 'changed'],
      ['kunpeng', 'ceiling_newest', 15, undefined, 'disappeared', 'changed'],
    ]);
  });

  test('a test that passed and then failed regressed — unless the lab stopped it', () => {
    const t = (name: string, status: string, labFailure = false, project = 'emu-arm64'): TestOutcome => ({
      project,
      name,
      status,
      labFailure,
    });
    const { diffs, unchanged } = compareTests(
      [
        t('boot', 'passed'),
        t('ssh', 'passed'),
        t('pmem', 'failed'),
        t('facts', 'passed'),
        t('xen', 'passed'),
        t('boot', 'passed', false, 'emu-xen'),
      ],
      [
        t('boot', 'failed'),
        t('ssh', 'failed', true),
        t('pmem', 'passed'),
        t('facts', 'skipped', true),
        t('kexec', 'failed'),
        t('boot', 'passed', false, 'emu-xen'),
      ],
    );
    expect(unchanged).toBe(1);
    expect(Object.fromEntries(diffs.map((d) => [d.name, d.verdict]))).toEqual({
      boot: 'regressed',
      ssh: 'inconclusive',
      pmem: 'improved',
      facts: 'changed',
      kexec: 'changed',
      xen: 'changed',
    });
    expect(diffs.find((d) => d.name === 'kexec')?.change).toBe('appeared');
    expect(diffs.find((d) => d.name === 'xen')?.change).toBe('disappeared');
  });

  test('versions per host: changed, appeared, a host gone', () => {
    const diffs = compareVersions(
      { 'emu-x86': { kernel: '6.1.0-27-amd64', qemu: '7.2.0', xen: null }, 'emu-mini': { kernel: '6.1.0' } },
      { 'emu-x86': { kernel: '6.1.0-28-amd64', qemu: '7.2.0', xen: '4.17.5' } },
    );
    expect(diffs).toEqual([
      { host: 'emu-mini', component: 'kernel', before: '6.1.0', after: null, change: 'disappeared' },
      { host: 'emu-x86', component: 'kernel', before: '6.1.0-27-amd64', after: '6.1.0-28-amd64', change: 'changed' },
      { host: 'emu-x86', component: 'xen', before: null, after: '4.17.5', change: 'appeared' },
    ]);
  });
});

test.describe('labrig compare on archived runs', () => {
  test.describe.configure({ mode: 'serial' });
  let work = '';
  const runs: Record<'A' | 'B' | 'C', string> = { A: '', B: '', C: '' };

  async function labrig(...args: string[]) {
    return execa(process.execPath, [join(repoRoot, 'bin', 'labrig.mjs'), ...args], { cwd: repoRoot, reject: false, timeout: 60_000 });
  }

  test.beforeAll(async () => {
    test.setTimeout(240_000);
    work = await mkdtemp(join(tmpdir(), 'labrig-compare-'));
    const base = { qemu: '7.2.0', kernel: '6.1.0-27-arm64', boot: 'ok', ssh: 'ok' } as const;
    runs.A = await makeRun(work, 'run-a', { ...base, ceiling: 15, wallS: 120 });
    runs.B = await makeRun(work, 'run-b', { ...base, qemu: '8.2.1', ceiling: 'none-below-28', wallS: 131, ssh: 'unreachable' });
    runs.C = await makeRun(work, 'run-c', { ...base, kernel: '6.12.0-1-arm64', ceiling: 12, wallS: 200, boot: 'panic' });
  });

  test.afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('the machine type changed: ceiling up, QEMU newer, a lab failure — no regression, exit 0', async () => {
    const r = await labrig('compare', runs.A, runs.B);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain('pcie-root-ports / emu-arm64 / ceiling_newest: 15 → none-below-28');
    expect(r.stdout).toMatch(/improved +pcie-root-ports \/ emu-arm64 \/ ceiling_newest/);
    expect(r.stdout).toMatch(/within tolerance +pcie-root-ports \/ emu-arm64 \/ wall_s_newest: 120 s → 131 s/);
    expect(r.stdout).toMatch(/changed +emu-arm64 +qemu +7\.2\.0 → 8\.2\.1/);
    expect(r.stdout).toMatch(/inconclusive +\[emu-arm64\] ssh\.spec\.ts › host answers over ssh: passed → failed/);
    expect(r.stdout).toContain('no regression: 0 regressed');
  });

  test('a regression: ceiling down, slower, a panic — exit 1, the same as JSON', async () => {
    const r = await labrig('compare', runs.A, runs.C, '--json');
    expect(r.exitCode, r.stderr).toBe(1);
    const c = JSON.parse(r.stdout) as Comparison;
    expect(c.a).toEqual({ label: runs.A, runId: 'run-a', gitRevision: 'rev-run-a' });
    expect(c.regressed).toBe(true);
    expect(c.versions).toEqual([
      { host: 'emu-arm64', component: 'kernel', before: '6.1.0-27-arm64', after: '6.12.0-1-arm64', change: 'changed' },
    ]);
    const byKey = Object.fromEntries(c.findings.map((f) => [f.key, f]));
    expect(byKey.ceiling_newest).toMatchObject({ before: 15, after: 12, verdict: 'regressed' });
    expect(byKey.wall_s_newest).toMatchObject({ before: 120, after: 200, unit: 's', verdict: 'regressed' });
    expect(byKey.qemu).toBeUndefined();
    expect(c.tests).toEqual([
      expect.objectContaining({
        project: 'emu-arm64',
        name: 'boot.spec.ts › guest boots to init',
        before: 'passed',
        after: 'failed',
        verdict: 'regressed',
      }),
    ]);
    expect(c.summary).toMatchObject({ regressed: 3, unchangedFindings: 1, unchangedTests: 2 });
  });

  test('the other way round, the ceiling falls back from none-below-28 — exit 1', async () => {
    const r = await labrig('compare', runs.B, runs.A);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toMatch(/REGRESSED +pcie-root-ports \/ emu-arm64 \/ ceiling_newest: none-below-28 → 15/);
    expect(r.stdout).toMatch(/improved +\[emu-arm64\] ssh\.spec\.ts/);
  });

  test('a run named by id or by prefix; an unknown run is exit 2 with the reason', async () => {
    const runsDir = join(work, 'runs');
    expect(await resolveRunDir('run-b', runsDir)).toBe(runs.B);
    expect((await loadRunSnapshot('run-c', runsDir)).runId).toBe('run-c');
    await expect(resolveRunDir('run-', runsDir)).rejects.toThrow(/ambiguous.*run-a, run-b, run-c/);
    const r = await labrig('compare', runs.A, join(work, 'no-such-run'));
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('no run');
  });
});

test.describe('validation: baseline vs candidate', () => {
  const t = (name: string, status: string, message?: string): TestOutcome => ({
    project: 'emu-arm64',
    name,
    status,
    labFailure: false,
    ...(message ? { message } : {}),
  });

  test('a machine type the candidate QEMU no longer has is named as such, not as a crash', () => {
    const gone =
      "[product:command-failed] host emu-arm64: libvirt refused the domain XML: unsupported configuration: Emulator '/opt/qemu-10.0/bin/qemu-system-aarch64' does not support machine type 'virt-2.6'";
    const { diffs } = compareTests(
      [t('ceiling with machine type virt-2.6', 'passed'), t('ceiling with machine type newest', 'passed')],
      [
        t('ceiling with machine type virt-2.6', 'failed', gone),
        t('ceiling with machine type newest', 'failed', '[product:did-not-boot] no login'),
      ],
    );
    expect(diffs.map((d) => [d.name, d.verdict, d.machineTypeGone])).toEqual([
      ['ceiling with machine type newest', 'regressed', undefined],
      ['ceiling with machine type virt-2.6', 'changed', 'virt-2.6'],
    ]);
    expect(diffs[1]!.why).toMatch(/^machine type virt-2\.6 no longer exists in B/);
    expect(machineTypeGone({ status: 'failed', message: "qemu-system-aarch64: unsupported machine type 'virt-2.6'" })).toBe('virt-2.6');
    expect(machineTypeGone({ status: 'passed', message: 'does not support machine type x' })).toBeUndefined();
  });

  test('regressions come first; every finding in scope side by side, one-sided ones listed', () => {
    const f = (
      key: string,
      value: string | number,
      host = 'emu-arm64',
      test = 'pcie-root-ports.spec.ts › pcie-root-port ceiling @pcie › ceiling with machine type newest',
    ): RecordedFinding => ({ suite: 'pcie-root-ports', host, key, value, test, status: 'passed' });
    const a = [
      f('ceiling_newest', 'none-below-28'),
      f('wall_s_newest', 300, 'emu-arm64'),
      f('machine_newest', 'virt-7.2'),
      f('ceiling_newest', 15, 'kunpeng'),
      f('boot_s', 40, 'emu-arm64', 'armhf › boots'),
    ];
    const b = [f('ceiling_newest', 12), f('wall_s_newest', 310), f('machine_newest', 'virt-10.0'), f('probes_newest', 6)];
    const snap = (findings: RecordedFinding[]) => ({
      label: 'x',
      runId: null,
      gitRevision: null,
      findings,
      hosts: { 'emu-arm64': { qemu: '7.2.0' }, kunpeng: {} },
      tests: [],
    });
    const scope = { hosts: ['emu-arm64'], grep: 'machine type' };
    const sa = scopeSnapshot(snap(a), scope);
    expect(sa.findings.map((x) => x.key)).toEqual(['ceiling_newest', 'wall_s_newest', 'machine_newest']);
    expect(Object.keys(sa.hosts)).toEqual(['emu-arm64']);
    const rows = findingRows(sa.findings, scopeSnapshot(snap(b), scope).findings);
    expect(rows.map((r) => [r.key, r.baseline, r.candidate, r.verdict])).toEqual([
      ['ceiling_newest', 'none-below-28', 12, 'regressed'],
      ['wall_s_newest', 300, 310, 'within-tolerance'],
      ['machine_newest', 'virt-7.2', 'virt-10.0', 'changed'],
      ['probes_newest', undefined, 6, 'only candidate'],
    ]);
    expect(formatFindingRows(rows).split('\n')[1]).toMatch(/pcie-root-ports\s+emu-arm64\s+ceiling_newest\s+none-below-28\s+12\s+REGRESSED/);
  });
});
