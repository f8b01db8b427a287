/**
 * emu-arm64: this machine standing in for the MP30-AR1 and the Kunpeng 920. It is reached over
 * a real OpenSSH sshd the lab starts on 127.0.0.1, and runs arm guests with libvirt and QEMU
 * under TCG (its facts say x86_64: the suites must not assume KVM). There is no systemd here,
 * so the lab starts virtlogd and libvirtd itself, and stops them by PID only if it started them.
 */

import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LabError } from '../../drivers/errors.js';
import { runLocal } from '../../drivers/local.js';
import { isOurProcess, stopProcess } from '../../drivers/proc.js';
import type { HostInput } from './hosts.js';
import { assertPortFree, waitForSsh, writeKnownHosts } from './probe.js';
import { startSshd } from './sshd.js';
import type { Arm64HostRecord, DaemonRecord } from './state.js';

export const EMU_ARM64 = 'emu-arm64';

/**
 * The armhf guest of the kernel-upgrade suite: the busybox guest (default: minutes, fits CI) or,
 * with LABRIG_EMU_ARMHF_GUEST=debian, the real Debian 12 guest upgraded by apt (README: its cost).
 */
type ArmhfInput = NonNullable<NonNullable<HostInput['suites']>['armhfKernelUpgrade']>;

export function emuArmhfGuest(env: NodeJS.ProcessEnv = process.env): Pick<ArmhfInput, 'guest' | 'memoryMiB' | 'timeoutsMs'> {
  const which = env.LABRIG_EMU_ARMHF_GUEST ?? 'busybox';
  if (which === 'debian')
    return {
      guest: { kind: 'recipe', recipe: 'armhf-debian', kernels: ['6.1.0-50-armmp', '6.1.0-53-armmp'] },
      // systemd and apt want more room than busybox; apt's initramfs under TCG takes minutes.
      memoryMiB: 1024,
      timeoutsMs: { boot: 420_000, shutdown: 180_000, upgrade: 1_500_000 },
    };
  if (which === 'busybox') return { guest: { kind: 'recipe', recipe: 'armhf-guest', kernels: ['6.1.0-47-armmp', '6.1.0-50-armmp'] } };
  throw new LabError('config', `LABRIG_EMU_ARMHF_GUEST=${which}: expected busybox or debian`);
}

const DAEMONS = [
  { name: 'virtlogd', bin: '/usr/sbin/virtlogd', pidFile: '/run/virtlogd.pid' },
  { name: 'libvirtd', bin: '/usr/sbin/libvirtd', pidFile: '/run/libvirtd.pid' },
] as const;

function runningDaemon(pidFile: string, bin: string): number | undefined {
  try {
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    return isOurProcess(pid, bin) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The daemon's current PID from its pid file (libvirtd may have been restarted by a suite). */
export const daemonPid = (d: DaemonRecord) => runningDaemon(d.pidFile, d.bin);

async function startDaemons(): Promise<DaemonRecord[]> {
  const out: DaemonRecord[] = [];
  for (const d of DAEMONS) {
    const already = runningDaemon(d.pidFile, d.bin);
    if (!already) await runLocal([d.bin, '-d'], { timeoutMs: 30_000 });
    const deadline = Date.now() + 15_000;
    let pid = already;
    while (!pid && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      pid = runningDaemon(d.pidFile, d.bin);
    }
    if (!pid) throw new LabError('lab-setup', `${d.name} did not start (no live pid in ${d.pidFile})`, { host: EMU_ARM64 });
    out.push({ name: d.name, bin: d.bin, pidFile: d.pidFile, ours: !already });
  }
  // The first connection probes capabilities (≈12 s, FIELD-NOTES); do it now, not in a test.
  await runLocal(['virsh', '-c', 'qemu:///system', 'domcapabilities', '--arch', 'aarch64', '--virttype', 'qemu', '--machine', 'virt'], {
    timeoutMs: 180_000,
  });
  return out;
}

export async function stopDaemons(daemons: readonly DaemonRecord[]): Promise<void> {
  for (const d of [...daemons].reverse()) if (d.ours) await stopProcess(daemonPid(d), d.bin);
}

export async function startEmuArm64(runDir: string, port: number): Promise<Arm64HostRecord> {
  await assertPortFree(EMU_ARM64, port);
  const dir = join(runDir, EMU_ARM64);
  const sshd = await startSshd({ dir, port });
  const configFile = join(dir, 'sshd_config');
  const knownHosts = join(runDir, `${EMU_ARM64}.known_hosts`);
  let daemons: DaemonRecord[] = [];
  try {
    const publicKey = await readFile(join(dir, 'ssh_host_ed25519_key.pub'), 'utf8');
    await writeKnownHosts(knownHosts, [{ address: sshd.address, port, publicKey }]);
    const target = { address: sshd.address, port, user: sshd.user, identityFile: sshd.identityFile, knownHosts };
    await waitForSsh(EMU_ARM64, target, 15_000, () => isOurProcess(sshd.pid, configFile));
    daemons = await startDaemons();
  } catch (e) {
    await stopDaemons(daemons);
    await stopProcess(sshd.pid, configFile);
    throw e;
  }
  return {
    kind: 'sshd',
    name: EMU_ARM64,
    pid: sshd.pid,
    address: sshd.address,
    port,
    user: sshd.user,
    identityFile: sshd.identityFile,
    hostKey: sshd.hostKey,
    knownHosts,
    dir,
    configFile,
    daemons,
    startedAt: new Date().toISOString(),
  };
}

/** Is libvirt still there? (a suite may restart it, so the pid file is read again). */
export function daemonsHealthy(r: Arm64HostRecord): string | undefined {
  const dead = r.daemons.filter((d) => !daemonPid(d));
  return dead.length ? `${dead.map((d) => d.name).join(', ')} not running` : undefined;
}

export function emuArm64LabHost(r: Arm64HostRecord): HostInput {
  return {
    name: EMU_ARM64,
    role: ['arm64-armhf', 'arm64-kunpeng'],
    description: 'this machine over a real sshd, with libvirt and QEMU/TCG running arm guests (stands in for MP30-AR1 and Kunpeng 920)',
    ssh: { address: r.address, port: r.port, user: r.user, identityFile: r.identityFile, hostKey: r.hostKey },
    expect: { arch: 'x86_64', features: ['libvirt', 'qemu', 'uefi'] },
    suites: {
      hostFacts: { domcapsArch: 'aarch64' },
      // TCG (the lab's accel): no host-passthrough (domcapabilities offers maximum/custom only). virt-2.12 is the
      // machine type of the seed's qemu 2.12 era (16 MiB ECAM: bus 0 + 15 ports); newest has 256 buses.
      pcieRootPorts: {
        machineTypes: ['virt-2.12', 'newest'],
        cpu: { mode: 'custom', model: 'cortex-a57' },
        // Seed 001's budget: xhci and the virtio video each take a root port (15 in all, 13 left on virt-2.12).
        portDevices: ['xhci', 'video'],
        memoryMiB: 512,
        probeTimeoutMs: 120_000,
        expectCeiling: { 'virt-2.12': 15, newest: 'none-below-28' },
      },
      armhfKernelUpgrade: {
        vm: 'labrig-armhf-guest',
        ...emuArmhfGuest(),
        // No systemd here: stop libvirtd by its pid file, start it again daemonised, and return
        // once it answers, so the lab (which re-reads the pid file) still finds it. PID 1 here
        // may leave it a zombie for a while: gone means gone or Z, not `kill -0` failing.
        restartLibvirtd: [
          'pid=$(cat /run/libvirtd.pid 2>/dev/null)',
          'alive() { [ -r "/proc/$1/status" ] && ! grep -q "^State:[[:space:]]*[ZX]" "/proc/$1/status"; }',
          'if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then i=0; while alive "$pid"; do [ $i -lt 300 ] || { echo "libvirtd $pid still running after 30 s" >&2; exit 1; }; sleep 0.1; i=$((i+1)); done; fi',
          '/usr/sbin/libvirtd -d </dev/null >/dev/null 2>&1 || exit 1',
          'i=0; until [ -S /run/libvirt/libvirt-sock ] && virsh -q -c qemu:///system version >/dev/null 2>&1; do [ $i -lt 600 ] || { echo "libvirtd did not answer within 60 s" >&2; exit 1; }; sleep 0.1; i=$((i+1)); done',
        ].join('\n'),
      },
    },
  };
}
