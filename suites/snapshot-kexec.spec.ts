/**
 * Seed 003 (DOMAIN.md §4): a running q35 QEMU guest whose RAM is on pmem is saved with
 * x-ignore-shared, the host kexecs into another kernel, the guest is restored — by another
 * QEMU when restoreQemu names one, on the saving QEMU's versioned machine type — and must go
 * on where it stopped: its counter, its boot_id, and a memory pattern (512 MiB by default)
 * written before the save and verified whole after the restore, with the blackout measured
 * against a cold boot of the same guest. Each pmem mode of the seed is its own
 * test; a negative control proves the checks catch lost pmem. The host is left on whichever
 * kernel it reached; the next run kexecs from there to the other one.
 */
import type { Recorder } from '../drivers/recorder.js';
import { hostAccel } from '../targets/accel.js';
import { expect, test } from '../targets/fixtures.js';
import type { Host } from '../targets/host.js';
import type { NestedGuest } from './snapshot-kexec/cycle.js';
import type { PmemMode } from './snapshot-kexec/guest.js';
import { type HostPrep, inspectHost } from './snapshot-kexec/host-prep.js';
import { describePass } from './snapshot-kexec/marker.js';
import {
  coldBootOn,
  type GuestFiles,
  type ModeBacking,
  paramsOf,
  prepareMode,
  requirePmemOn,
  saveKexecRestore,
  uploadGuest,
} from './snapshot-kexec/procedure.js';

/** QEMU's own x-ignore-shared test bounds the RAM it transferred at 4 MiB (DOMAIN.md §4). */
const VM_STATE_LIMIT_BYTES = 4 * 1024 * 1024;

function stepRecorder(): Recorder {
  return {
    step: (title, params, body) => {
      const shown = Object.entries(params)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `${k}=${v}`)
        .join(', ');
      return test.step(shown ? `${title} (${shown})` : title, body);
    },
    attach: async (name, content, contentType = 'text/plain') => void (await test.info().attach(name, { body: content, contentType })),
    log: (line) => test.info().annotations.push({ type: 'log', description: line }),
  };
}

/** "7.2.19 → 10.0.2" (the saving QEMU's version → the restoring one's), or "7.2.19 (same QEMU)". */
function qemuUpgrade(prep: HostPrep): string {
  const v = (q: HostPrep['qemu']) => /version (\S+)/.exec(q.version)?.[1] ?? q.version;
  return prep.restoreQemu === prep.qemu ? `${v(prep.qemu)} (same QEMU)` : `${v(prep.qemu)} → ${v(prep.restoreQemu)}`;
}

/** Worker state: the host inspection, and a guest left running by a passed cycle for the next test. */
let prep: HostPrep | undefined;
let files: GuestFiles | undefined;
let running: { guest: NestedGuest; backing: ModeBacking } | undefined;

async function inspected(host: Host): Promise<HostPrep> {
  const p = paramsOf(host);
  prep ??= await test.step('inspect the host: pmem, drivers, both QEMUs, kernels', async () =>
    inspectHost(host, {
      qemu: p.qemu,
      restoreQemu: p.restoreQemu,
      machine: p.machine,
      accel: (await hostAccel(host)).accel,
      workDir: p.workDir,
    }));
  return prep;
}

async function prepared(host: Host): Promise<{ prep: HostPrep; files: GuestFiles }> {
  const p = paramsOf(host);
  const hp = await inspected(host);
  requirePmemOn(host, p, hp);
  files ??= await test.step('upload the guest initramfs (busybox and the memory workload)', () => uploadGuest(host, p, hp.running));
  return { prep: hp, files };
}

/** The guest's whole serial log (boot, ticks before and after the restore) as evidence. */
async function attachSerial(guest: NestedGuest): Promise<void> {
  const log = await guest.serialLog().catch(() => undefined);
  if (log?.length) await test.info().attach(`guest-serial-${guest.mode}.log`, { body: log, contentType: 'text/plain' });
}

async function leaveNoGuest(): Promise<void> {
  const g = running;
  running = undefined;
  await g?.guest.stop().catch(() => undefined);
}

test.describe('snapshot → kexec → restore @snapshot-kexec', () => {
  test.afterAll(async () => {
    await leaveNoGuest();
  });

  test('host preparation: pmem present, modes, QEMU libpmem, kernels to kexec between', async ({ host, findings }) => {
    const p = paramsOf(host);
    const prep = await inspected(host);
    await test.info().attach('ndctl-regions.json', { body: JSON.stringify(prep.regions, null, 2), contentType: 'application/json' });
    findings.record('pmem_source', prep.pmemSource || 'none');
    // Seed 003 upgrades QEMU across the cycle: both are findings, even when they are one QEMU.
    findings.record('qemu', prep.qemu.binary);
    findings.record('qemu_version', prep.qemu.version);
    findings.record('restore_qemu', prep.restoreQemu.binary);
    findings.record('restore_qemu_version', prep.restoreQemu.version);
    findings.record('machine', p.machine === prep.machine ? prep.machine : `${prep.machine} (${p.machine} on the saving QEMU)`);
    findings.record('restore_qemu_has_machine', prep.restoreQemu.machines.has(prep.machine));
    findings.record('pmem_on', p.pmemOn);
    for (const [key, q] of [
      ['qemu_libpmem', prep.qemu],
      ['restore_qemu_libpmem', prep.restoreQemu],
    ] as const)
      findings.record(key, q.pmem.ok ? true : `no: ${q.pmem.reason}`);
    findings.record('accel', prep.accel);
    findings.record('accel_evidence', (await hostAccel(host)).evidence);
    findings.record('kernel_running', prep.running);
    findings.record('kernels_installed', prep.kernels.map((k) => k.version).join(' '));
    for (const mode of ['devdax', 'fsdax'] as const) {
      const m = prep.modes[mode];
      findings.record(`mode_${mode}`, m.ok ? 'supported' : `unsupported: ${m.reason}`);
    }
    expect(prep.pmemSource, `${host.name}: no pmem (no memmap= on the command line, no NVDIMM region in ndctl list)`).not.toBe('');
    expect(prep.regions.length, `${host.name}: ndctl lists no pmem region`).toBeGreaterThan(0);
    const other = prep.kernels.filter((k) => k.version !== prep.running);
    expect(other.length, `${host.name}: only ${prep.running} is installed; a kexec needs another kernel in /boot`).toBeGreaterThan(0);
    expect(
      p.modes.some((m) => prep.modes[m].ok),
      `${host.name}: none of the configured modes ${p.modes.join(', ')} is possible`,
    ).toBe(true);
    requirePmemOn(host, p, prep);
  });

  for (const mode of ['devdax', 'fsdax'] as const satisfies readonly PmemMode[]) {
    test(`cycle with the guest RAM on ${mode}`, async ({ host, findings }) => {
      const p = paramsOf(host);
      test.skip(!p.modes.includes(mode), `${mode} is not in this host's snapshotKexec.modes`);
      const { prep, files } = await prepared(host);
      const support = prep.modes[mode];
      test.skip(!support.ok, `${host.name} cannot do ${mode}: ${support.ok ? '' : support.reason}`);
      await leaveNoGuest();
      const rec = stepRecorder();
      const backing = await prepareMode(host, rec, p, mode);
      const guest = await coldBootOn(host, rec, p, prep, files, backing);
      let passed = false;
      try {
        findings.record(`${mode}.cold_boot_ms`, guest.coldBootMs, 'ms');
        // Seed 003 upgrades QEMU across the cycle: which QEMU saved and which restored, per cycle.
        findings.record(`${mode}.qemu_upgrade`, qemuUpgrade(prep));
        findings.record(`${mode}.qemu_backend`, guest.argv[guest.argv.indexOf('-object') + 1]!);
        const r = await saveKexecRestore(host, rec, p, guest, backing);
        findings.record(`${mode}.vm_state_bytes`, r.save.vmStateBytes, 'B');
        findings.record(`${mode}.savevm_ms`, r.save.savevmMs, 'ms');
        findings.record(`${mode}.kexec_ms`, r.kexecMs, 'ms');
        findings.record(`${mode}.kernel_before`, r.kernelBefore);
        findings.record(`${mode}.kernel_after`, r.kernelAfter);
        findings.record(`${mode}.vm_blackout_ms`, r.blackoutMs, 'ms');
        if (r.resumeMarkerMs !== undefined) findings.record(`${mode}.resume_marker_ms`, r.resumeMarkerMs, 'ms');
        findings.record(`${mode}.blackout_to_cold_boot_ratio`, Number((r.blackoutMs / guest.coldBootMs).toFixed(3)));
        expect(r.kernelAfter, 'the host runs another kernel after the kexec').not.toBe(r.kernelBefore);
        expect(
          r.save.vmStateBytes,
          `VM state with x-ignore-shared must stay under ${VM_STATE_LIMIT_BYTES} bytes (the RAM on pmem is not saved)`,
        ).toBeLessThan(VM_STATE_LIMIT_BYTES);
        // QEMU's own words (the restoring QEMU's stderr at start, or loadvm's error) are the finding.
        if (r.restoreError) findings.record(`${mode}.restore_error`, r.restoreError.message);
        expect(r.restoreError?.message, `restore (loadvm s0, cont) by ${qemuUpgrade(prep)} succeeds`).toBeUndefined();
        const v = r.verdict!;
        findings.record(`${mode}.ticks`, `${v.lastBefore?.n ?? '-'} → ${v.firstAfter?.n ?? '-'}`);
        findings.record(`${mode}.pattern_mib`, p.guest.patternMiB, 'MiB');
        findings.record(
          `${mode}.pattern_after_restore`,
          v.passAfter ? describePass(v.passAfter, p.guest.patternMiB) : 'no full pass after the restore',
        );
        expect(v.problems, `the guest went on where it stopped${v.error ? ` (${v.error.message.split('\n')[0]})` : ''}`).toEqual([]);
        passed = true;
        running = { guest, backing };
      } finally {
        await attachSerial(guest);
        if (!passed) await guest.stop().catch(() => undefined);
      }
    });
  }

  test('negative control: pmem overwritten between save and restore is caught', async ({ host, findings }) => {
    const p = paramsOf(host);
    const { prep, files } = await prepared(host);
    const rec = stepRecorder();
    let guest: NestedGuest;
    let backing: ModeBacking;
    if (running && (await running.guest.qemuRunning().catch(() => false))) {
      ({ guest, backing } = running);
      rec.log(`the ${backing.mode} guest of the previous test is still running: it is the control's guest (no second cold boot)`);
    } else {
      const mode = p.modes.find((m) => prep.modes[m].ok);
      test.skip(!mode, 'no pmem mode usable on this host');
      await leaveNoGuest();
      backing = await prepareMode(host, rec, p, mode!);
      guest = await coldBootOn(host, rec, p, prep, files, backing);
    }
    running = undefined;
    try {
      findings.record('negative.mode', backing.mode);
      const r = await saveKexecRestore(host, rec, p, guest, backing, { overwritePmem: true });
      const caught = r.restoreError?.message ?? (r.verdict && !r.verdict.ok ? r.verdict.problems.join('; ') : undefined);
      findings.record('negative.caught', caught ?? 'NOT CAUGHT');
      if (caught) test.info().annotations.push({ type: 'expected failure', description: caught });
      await test.info().attach('negative-control.txt', {
        body: `expected failure, caught by the suite's own checks:\n${caught ?? 'nothing: the checks passed on overwritten pmem'}\n`,
        contentType: 'text/plain',
      });
      expect(caught, 'with the guest RAM on pmem overwritten, the restore checks must fail').toBeDefined();
    } finally {
      await attachSerial(guest);
      await guest.stop().catch(() => undefined);
    }
  });
});
