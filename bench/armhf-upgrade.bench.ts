/**
 * The armhf kernel-upgrade cycle (seed 000) on the running lab's arm64-armhf host, timed: each
 * boot (start→login, resume→login), the upgrade cycle (install B → shut down → start → uname B),
 * the guest reboot to shut off, and the whole suite. Peer: the same guest (kernel A, its
 * initramfs, a copy of the disk, a mapped 9p share) booted by bare qemu-system-arm, no libvirt,
 * no hook — the ratio is what libvirt, the hook and the console path add to a boot.
 * Takes the QEMU lock first, then brings emu-arm64 up if it is not (and down again after),
 * so it never holds the host's port while waiting for the lock. Takes the host's lease.
 * Run: npx tsx bench/armhf-upgrade.bench.ts [--runs N] [--json]
 */
import { spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireLock, QEMU_SLOT_LOCK, stopProcess } from '../drivers/proc.js';
import { consoleRecorder } from '../drivers/recorder.js';
import { armhfGuestImage, initrdFile, kernelFile } from '../images/armhf-guest.js';
import { GUEST_CMDLINE } from '../images/contracts/armhf-guest.js';
import { stderrProgress } from '../images/debs.js';
import { type ArmhfOutcome, armhfKernelUpgrade } from '../suites/armhf-kernel-upgrade/cycle.js';
import { hostAccel } from '../targets/accel.js';
import { loadLab } from '../targets/config.js';
import { EMU_ARM64 } from '../targets/emulated/emu-arm64.js';
import { labDown, labStatus, labUp } from '../targets/emulated/lab.js';
import { Host } from '../targets/host.js';
import { acquireLease } from '../targets/lease.js';

const args = process.argv.slice(2);
const runs = Number(args[args.indexOf('--runs') + 1] ?? 1) || 1;
const json = args.includes('--json');
const s = (ms: number | undefined) => (ms === undefined ? '-' : (ms / 1000).toFixed(1));

/** Bare QEMU: process start to the login prompt on the serial file. */
async function bareQemuBootMs(kernels: readonly string[]): Promise<number> {
  const image = await armhfGuestImage(kernels, stderrProgress);
  const dir = await mkdtemp(join(tmpdir(), 'labrig-armhf-bench-'));
  const share = join(dir, 'share');
  await mkdir(share);
  await copyFile(image.file('disk'), join(dir, 'disk.img'));
  const serial = join(dir, 'serial.log');
  const a = kernels[0]!;
  const t0 = performance.now();
  const qemu = spawn(
    'qemu-system-arm',
    [
      '-M',
      'virt,highmem=off',
      '-m',
      '256',
      '-smp',
      '1',
      '-display',
      'none',
      '-nodefaults',
      '-no-reboot',
      '-kernel',
      image.file(kernelFile(a)),
      '-initrd',
      image.file(initrdFile(a)),
      '-append',
      GUEST_CMDLINE,
      '-drive',
      `file=${join(dir, 'disk.img')},format=raw,if=none,id=d0`,
      '-device',
      'virtio-blk-pci,drive=d0',
      '-fsdev',
      `local,id=fs0,path=${share},security_model=mapped-xattr`,
      '-device',
      'virtio-9p-pci,fsdev=fs0,mount_tag=virtio-boot',
      '-serial',
      `file:${serial}`,
      '-monitor',
      'none',
      `-name`,
      `labrig-armhf-bench,debug-threads=off`,
    ],
    { stdio: 'ignore' },
  );
  try {
    const deadline = Date.now() + 240_000;
    for (;;) {
      if (/login: ?$/m.test(await readFile(serial, 'utf8').catch(() => ''))) return Math.round(performance.now() - t0);
      if (qemu.exitCode !== null || Date.now() > deadline)
        throw new Error(`bare QEMU: no login prompt (exit ${qemu.exitCode}); see ${serial}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await stopProcess(qemu.pid, 'labrig-armhf-bench');
    await rm(dir, { recursive: true, force: true });
  }
}

/** Everything between taking the lock and giving it back; the lab is left as it was found. */
async function measure(): Promise<{ outcomes: ArmhfOutcome[]; bare: number[]; hostName: string; kernels: readonly string[] }> {
  const wasUp = (await labStatus()).some((h) => h.name === EMU_ARM64 && h.state === 'up');
  if (!wasUp) await labUp({ hosts: [EMU_ARM64], progress: stderrProgress });
  const logDir = await mkdtemp(join(tmpdir(), 'labrig-armhf-bench-logs-'));
  try {
    const lab = await loadLab();
    const config = lab.hosts.find((h) => h.suites.armhfKernelUpgrade);
    const params = config?.suites.armhfKernelUpgrade;
    if (!config || !params) throw new Error('no host of the lab declares suites.armhfKernelUpgrade');
    if (params.guest.kind !== 'recipe') throw new Error('the bench boots the recipe-built guest (guest.kind recipe)');
    const kernels = params.guest.kernels;
    const recorder = consoleRecorder(`[${config.name}] `);
    const host = new Host(config, { logDir, recorder });
    const lease = await acquireLease(host, { ...lab.lease, runId: `bench-${process.pid}`, recorder });
    const outcomes: ArmhfOutcome[] = [];
    const bare: number[] = [];
    try {
      for (let i = 0; i < runs; i++) {
        bare.push(await bareQemuBootMs(kernels));
        const out: ArmhfOutcome = { boots: {}, libvirtdRestartMs: [] };
        await armhfKernelUpgrade(
          {
            host,
            params,
            recorder,
            consoleLog: join(logDir, `console-${i}.log`),
            progress: stderrProgress,
            accel: (await hostAccel(host)).accel,
          },
          out,
        );
        outcomes.push(out);
      }
    } finally {
      await host.close();
      await lease.release();
      host.ssh.close();
    }
    return { outcomes, bare, hostName: config.name, kernels };
  } finally {
    if (!wasUp) await labDown({ hosts: [EMU_ARM64] });
  }
}

const release = await acquireLock(QEMU_SLOT_LOCK, { timeoutMs: 60 * 60_000, what: 'armhf upgrade bench' });
const { outcomes, bare, hostName, kernels } = await measure().finally(release);

const median = (xs: number[]) => {
  const v = [...xs].sort((x, y) => x - y);
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
};
const boot = (label: string, k: 'startToLoginMs' | 'resumeToLoginMs') => median(outcomes.map((o) => o.boots[label]?.[k] ?? NaN));
const summary = {
  runs,
  bareQemuBootMs: median(bare),
  bootStartToLoginMs: Object.fromEntries(['installer', 'kernel A', 'kernel B'].map((l) => [l, boot(l, 'startToLoginMs')])),
  bootResumeToLoginMs: Object.fromEntries(['installer', 'kernel A', 'kernel B'].map((l) => [l, boot(l, 'resumeToLoginMs')])),
  upgradeCycleMs: median(outcomes.map((o) => o.upgradeCycleMs ?? NaN)),
  rebootToShutOffMs: median(outcomes.map((o) => o.rebootToShutOffMs ?? NaN)),
  libvirtdRestartMs: median(outcomes.flatMap((o) => o.libvirtdRestartMs)),
  suiteMs: median(outcomes.map((o) => o.totalMs ?? NaN)),
};
const ratio = summary.bootStartToLoginMs['kernel B']! / summary.bareQemuBootMs;
if (json) process.stdout.write(`${JSON.stringify({ ...summary, libvirtOverBareRatio: ratio }, null, 2)}\n`);
else {
  process.stdout.write(
    `armhf upgrade on ${hostName} (${kernels.join(' → ')}), median of ${runs}:\n` +
      `  boot, virsh start → login: installer ${s(summary.bootStartToLoginMs.installer)} s, A ${s(summary.bootStartToLoginMs['kernel A'])} s, B ${s(summary.bootStartToLoginMs['kernel B'])} s\n` +
      `  boot, resume → login:      installer ${s(summary.bootResumeToLoginMs.installer)} s, A ${s(summary.bootResumeToLoginMs['kernel A'])} s, B ${s(summary.bootResumeToLoginMs['kernel B'])} s\n` +
      `  peer: bare qemu-system-arm → login ${s(summary.bareQemuBootMs)} s; libvirt start→login / bare = ${ratio.toFixed(2)}\n` +
      `  upgrade cycle (install B → shut down → start → uname B) ${s(summary.upgradeCycleMs)} s; guest reboot → shut off ${s(summary.rebootToShutOffMs)} s\n` +
      `  libvirtd restart ${s(summary.libvirtdRestartMs)} s; whole suite ${s(summary.suiteMs)} s\n`,
  );
}
