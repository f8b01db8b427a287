/**
 * Seed 003 end to end on one host, for the spec and the benchmark: prepare a pmem mode and
 * cold-boot the guest on it, then save → kexec → restore → verify, each a recorded step with
 * its timings. Lab failures (the host did not come back) propagate as LabErrors; what the
 * product did is returned for the caller to judge (the negative control expects a failure).
 */
import { readFile } from 'node:fs/promises';
import { LabError, ProductError } from '../../drivers/errors.js';
import { QmpError } from '../../drivers/qmp.js';
import type { Recorder } from '../../drivers/recorder.js';
import { shellQuote } from '../../drivers/ssh.js';
import { guestInitramfs, isStaticElf } from '../../images/snapshot-guest.js';
import { qemuBuildBinary } from '../../targets/components.js';
import type { Host } from '../../targets/host.js';
import { kexecInto } from '../../targets/kexec.js';
import { type HostConfig, suiteParamsSchema } from '../../targets/schema.js';
import { NestedGuest, type SaveResult } from './cycle.js';
import type { PmemMode } from './guest.js';
import { configureNamespace, type HostPrep, mountFsdax, type NdNamespace, namespaceOf } from './host-prep.js';
import type { ContinuationVerdict } from './marker.js';
import { buildMemProgram } from './mem-program.js';
import { pmemOnRefused } from './qemu-check.js';

export type SnapshotKexecParams = NonNullable<HostConfig['suites']['snapshotKexec']>;

/** The host's block with every default filled in (a host without one gets the defaults); a bare `qemu` name runs from the host's QEMU build if it has one. */
export function paramsOf(host: Host): SnapshotKexecParams {
  const p = suiteParamsSchema.shape.snapshotKexec.unwrap().parse(host.config.suites.snapshotKexec ?? {});
  return p.qemu.includes('/') ? p : { ...p, qemu: qemuBuildBinary(host.config, p.qemu) ?? p.qemu };
}

/** The runner's static busybox (Debian's busybox-static) becomes the guest's userland. */
export const RUNNER_BUSYBOX = '/bin/busybox';

export interface GuestFiles {
  kernel: string;
  initrd: string;
}

export async function uploadGuest(host: Host, p: SnapshotKexecParams, running: string): Promise<GuestFiles> {
  const busybox = await readFile(RUNNER_BUSYBOX).catch((e: Error) => {
    throw new LabError(
      'config',
      `the guest's busybox ${RUNNER_BUSYBOX} is not readable on the runner (install busybox-static): ${e.message}`,
    );
  });
  if (!isStaticElf(busybox))
    throw new LabError('config', `${RUNNER_BUSYBOX} on the runner is not a static x86_64 ELF (install busybox-static)`);
  const initrd = `${p.workDir}/guest-initrd.cpio`;
  await host.run(`mkdir -p ${shellQuote(p.workDir)}`, { check: true });
  await host.ssh.writeFile(initrd, guestInitramfs(busybox, await buildMemProgram()));
  const kernel = p.guest.kernel ?? `/boot/vmlinuz-${running}`;
  await host.run(`test -r ${shellQuote(kernel)}`, { check: true });
  return { kernel, initrd };
}

/**
 * pmem=on asked (the seed's command line) of a QEMU that refuses it fails the run: a silent
 * fallback to a backend without pmem=on would test something the lab did not ask for.
 */
export function requirePmemOn(host: Host, p: SnapshotKexecParams, prep: HostPrep): void {
  if (!p.pmemOn) return;
  const qemuDir = host.config.components.qemuDir;
  const roles = [
    { role: 'saving' as const, qemu: prep.qemu, underValidation: Boolean(qemuDir && prep.qemu.binary.startsWith(qemuDir)) },
    // A distinct restoring QEMU is the upgrade the run validates.
    {
      role: 'restoring' as const,
      qemu: prep.restoreQemu,
      underValidation: prep.restoreQemu !== prep.qemu || Boolean(qemuDir && prep.restoreQemu.binary.startsWith(qemuDir)),
    },
  ];
  for (const r of roles) if (!r.qemu.pmem.ok) throw pmemOnRefused({ host: host.name, ...r });
}

export interface ModeBacking {
  mode: PmemMode;
  namespace: NdNamespace;
  memPath: string;
  align?: string;
}

/** Puts the namespace into `mode` and gives the path the guest's RAM maps. */
export async function prepareMode(host: Host, rec: Recorder, p: SnapshotKexecParams, mode: PmemMode): Promise<ModeBacking> {
  return rec.step(`pmem: ${p.namespace} as ${mode}`, { namespace: p.namespace, mode }, async () => {
    const ns = await configureNamespace(host, p.namespace, mode, p.fsdaxMount);
    if (mode === 'devdax') {
      if (!ns.chardev)
        throw new ProductError('mismatch', `namespace ${p.namespace} in devdax mode has no dax device: ${JSON.stringify(ns)}`, {
          host: host.name,
        });
      const alignBytes = Number((await host.read(`/sys/bus/dax/devices/${ns.chardev}/align`).catch(() => '2097152')).trim());
      return { mode, namespace: ns, memPath: `/dev/${ns.chardev}`, align: `${alignBytes / 1024 / 1024}M` };
    }
    if (!ns.blockdev)
      throw new ProductError('mismatch', `namespace ${p.namespace} in fsdax mode has no block device: ${JSON.stringify(ns)}`, {
        host: host.name,
      });
    await mountFsdax(host, ns.blockdev, p.fsdaxMount, true);
    // Written in full before the guest starts: on a fresh DAX file every first touch of a page
    // allocates and zeroes a block, which would be counted in the cold boot (75 s more here).
    const memPath = `${p.fsdaxMount}/labrig-guest-ram`;
    await host.run(`dd if=/dev/zero of=${shellQuote(memPath)} bs=1M count=${p.guest.memoryMiB} conv=fsync 2>&1`, {
      check: true,
      timeoutMs: 300_000,
    });
    return { mode, namespace: ns, memPath };
  });
}

export async function coldBootOn(
  host: Host,
  rec: Recorder,
  p: SnapshotKexecParams,
  prep: HostPrep,
  files: GuestFiles,
  backing: ModeBacking,
): Promise<NestedGuest> {
  return NestedGuest.coldBoot(host, rec, {
    mode: backing.mode,
    memPath: backing.memPath,
    align: backing.align,
    workDir: p.workDir,
    qemu: prep.qemu.binary,
    restoreQemu: prep.restoreQemu.binary,
    machine: prep.machine,
    accel: prep.accel,
    pmemOn: p.pmemOn,
    memoryMiB: p.guest.memoryMiB,
    patternMiB: p.guest.patternMiB,
    verifyMsPerSecond: p.guest.verifyMsPerSecond,
    kernel: files.kernel,
    initrd: files.initrd,
    append: p.guest.append,
    bootTimeoutMs: p.timeoutsMs.guestBoot,
  });
}

export interface CycleResult {
  save: SaveResult;
  kernelBefore: string;
  kernelAfter: string;
  kexecMs: number;
  /** stop → running again after loadvm + cont. */
  blackoutMs: number;
  /** stop → the guest's first marker line after the restore (undefined if none came). */
  resumeMarkerMs?: number;
  /** What restoring failed with, if it did (loadvm refused, QEMU exited, …). */
  restoreError?: ProductError | QmpError;
  verdict?: ContinuationVerdict & { error?: ProductError; firstSeenAt?: number };
}

/** x-ignore-shared on → stop → savevm → quit → kexec → pmem checked → (overwrite) → restore → verify. */
export async function saveKexecRestore(
  host: Host,
  rec: Recorder,
  p: SnapshotKexecParams,
  guest: NestedGuest,
  backing: ModeBacking,
  opts: { overwritePmem?: boolean } = {},
): Promise<CycleResult> {
  const before = await rec.step('guest runs its marker', { mode: backing.mode, patternMiB: guest.expected.mib }, () =>
    guest.waitMarker((m) => m.pattern !== undefined && m.ticks.length >= 2, p.timeoutsMs.restore, 'the pattern written and two ticks'),
  );
  rec.log(
    `guest wrote ${before.pattern!.mib} MiB (key ${before.pattern!.key}), at tick ${before.ticks.at(-1)!.n}, boot_id ${before.ticks.at(-1)!.bootId}`,
  );
  const save = await rec.step('save: x-ignore-shared on, stop, savevm s0, quit', { tag: 's0' }, () => guest.save());
  const kexec = await rec.step('host: kexec into the other kernel', { target: p.targetKernel ?? 'the other installed kernel' }, () =>
    kexecInto(host, { kernel: p.targetKernel, timeoutMs: p.timeoutsMs.kexec, recorder: rec }),
  );
  await rec.step('host back: pmem still there', { kernel: kexec.to }, () => checkPmemAfterKexec(host, p, backing));
  if (opts.overwritePmem)
    await rec.step('negative control: overwrite the guest RAM on pmem', { memPath: backing.memPath }, () => overwrite(host, p, backing));
  let running: number;
  try {
    running = await rec.step(
      'restore: same argv (-S), x-ignore-shared on, loadvm s0, cont',
      { qemu: guest.restoreArgv[0], machine: guest.spec.machine },
      () => guest.restore(),
    );
  } catch (e) {
    if (!(e instanceof ProductError || e instanceof QmpError)) throw e;
    return {
      save,
      kernelBefore: kexec.from,
      kernelAfter: kexec.to,
      kexecMs: kexec.kexecMs,
      blackoutMs: Math.round(performance.now() - save.tStop),
      restoreError: e,
    };
  }
  const verdict = await rec.step(
    'verify: counter goes on, guest boot_id, a full pattern pass after the restore',
    { patternMiB: guest.expected.mib, patternKey: guest.expected.key },
    () => guest.verify(save, 3, p.timeoutsMs.restore),
  );
  const resumeMarkerMs = verdict.firstSeenAt === undefined ? undefined : Math.round(verdict.firstSeenAt - save.tStop);
  return {
    save,
    kernelBefore: kexec.from,
    kernelAfter: kexec.to,
    kexecMs: kexec.kexecMs,
    blackoutMs: Math.round(running - save.tStop),
    resumeMarkerMs,
    verdict,
  };
}

/** The seed's premise: what was on pmem before the kexec is still there, at the same path. */
async function checkPmemAfterKexec(host: Host, p: SnapshotKexecParams, b: ModeBacking): Promise<void> {
  const ns = await namespaceOf(host, p.namespace);
  const same =
    ns &&
    ns.mode === b.mode &&
    ns.size === b.namespace.size &&
    (b.mode === 'devdax' ? ns.chardev === b.namespace.chardev : ns.blockdev === b.namespace.blockdev);
  if (!same)
    throw new ProductError(
      'mismatch',
      `after the kexec ${p.namespace} is ${JSON.stringify(ns)}, before it was ${JSON.stringify(b.namespace)}`,
      { host: host.name },
    );
  if (b.mode === 'fsdax') await mountFsdax(host, ns.blockdev!, p.fsdaxMount, false);
  const r = await host.run(`test -e ${shellQuote(b.memPath)} && ls -l ${shellQuote(b.memPath)}`);
  if (r.code !== 0) throw new ProductError('mismatch', `${b.memPath} is gone after the kexec`, { host: host.name });
}

async function overwrite(host: Host, p: SnapshotKexecParams, b: ModeBacking): Promise<void> {
  const mib = p.guest.memoryMiB;
  // devdax has no write(2): daxio maps the device. A file on the dax mount takes dd.
  const cmd =
    b.mode === 'devdax'
      ? `daxio -z -o ${shellQuote(b.memPath)} -l ${mib * 1024 * 1024}`
      : `dd if=/dev/zero of=${shellQuote(b.memPath)} bs=1M count=${mib} conv=notrunc && sync`;
  await host.run(cmd, { check: true, timeoutMs: 300_000 });
}
