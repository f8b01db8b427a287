/**
 * One probe of the root-port ceiling: a fresh domain with N pcie-root-port controllers and the
 * probe disk behind the last one, booted once, its serial log watched until one outcome. The
 * domain and its nvram are removed whatever happened.
 */
import { join } from 'node:path';
import { Console } from '../../drivers/console.js';
import type { DomainSpec, PortDevice } from '../../drivers/domain-xml.js';
import { ProductError } from '../../drivers/errors.js';
import { DefineRejected, type Virsh } from '../../drivers/libvirt.js';
import { shellQuote } from '../../drivers/ssh.js';
import { PROBE_MARKER } from '../../images/contracts/probe-guest.js';
import { harnessName } from '../../targets/harness-name.js';
import type { Host } from '../../targets/host.js';
import { runContext } from '../../targets/run-context.js';
import type { ProbeResult } from './bisect.js';

export type Outcome = 'booted' | 'device-missing' | 'firmware-stuck' | 'panic' | 'timeout' | 'define-rejected';

export interface ProbeSettings {
  machine: string;
  /** A QEMU build's qemu-system-aarch64 (components.qemuDir); default: libvirt's. */
  emulator?: string;
  domainType: 'kvm' | 'qemu';
  cpu: DomainSpec['cpu'];
  memoryMiB: number;
  packRootPorts: boolean;
  portDevices: PortDevice[];
  ioReserve?: number;
  firmware: { loader: string; varsTemplate: string };
  /** Paths on the host. */
  kernel: string;
  initrd: string;
  cmdline: string;
  probeDisk: string;
  probeSerial: string;
  workDir: string;
  timeoutMs: number;
}

export interface ProbeRecord extends ProbeResult {
  outcome: Outcome;
  xml: string;
  consoleText: string;
  /** Our share of the probe: everything but the guest's boot (define, start, console, destroy, clean-up). */
  harnessMs: number;
  /** From `virsh start` returning to the outcome on the console. */
  guestMs: number;
  /** Milliseconds per phase, in the order they ran (`guest` is guestMs). */
  phases: Record<string, number>;
}

const UEFI_SHELL = /Shell> |UEFI Interactive Shell/;
const KERNEL_STARTED = /Booting Linux|Linux version \d/;
/** The most the verdict waits on the serial log after the guest wrote it. */
const SERIAL_POLL_MS = 50;

export function probeSpec(n: number, name: string, s: ProbeSettings): DomainSpec {
  return {
    name,
    type: s.domainType,
    arch: 'aarch64',
    machine: s.machine,
    ...(s.emulator ? { emulator: s.emulator } : {}),
    memoryMiB: s.memoryMiB,
    vcpus: 1,
    cpu: s.cpu,
    uefi: { loader: s.firmware.loader, varsTemplate: s.firmware.varsTemplate, nvram: join(s.workDir, `${name}_VARS.fd`) },
    kernel: { path: s.kernel, initrd: s.initrd, cmdline: s.cmdline },
    onReboot: 'destroy',
    rootPorts: n,
    packRootPorts: s.packRootPorts,
    portDevices: s.portDevices,
    rootPortIoReserve: s.ioReserve,
    disks: [{ source: s.probeDisk, format: 'raw', target: 'vda', serial: s.probeSerial, readonly: true, behindLastRootPort: true }],
    serialLog: join(s.workDir, `${name}-serial.log`),
  };
}

export async function probeRootPorts(host: Host, virsh: Virsh, n: number, s: ProbeSettings): Promise<ProbeRecord> {
  const name = harnessName(`pcie-${n}`, runContext().runId);
  const spec = probeSpec(n, name, s);
  const t0 = performance.now();
  let guestMs = 0;
  let xml = '';
  let console: Console | undefined;
  const phases: Record<string, number> = {};
  const timed = async <T>(phase: string, body: () => Promise<T>): Promise<T> => {
    const t = performance.now();
    try {
      return await body();
    } finally {
      phases[phase] = (phases[phase] ?? 0) + performance.now() - t;
    }
  };
  // The record is returned from inside the try; its times are completed once the clean-up has run.
  let record: ProbeRecord | undefined;
  const done = (outcome: Outcome, reason: string): ProbeRecord =>
    (record = {
      n,
      ok: outcome === 'booted',
      ...(outcome === 'timeout' ? { unknown: true } : {}),
      outcome,
      reason,
      seconds: 0,
      xml,
      consoleText: console?.text(0) ?? '',
      harnessMs: 0,
      guestMs: 0,
      phases,
    });
  try {
    try {
      const defined = await timed('define', () => virsh.define(spec));
      xml = defined.xml;
      const { rootPorts, disks } = defined.summary;
      if (rootPorts.length !== n)
        throw new ProductError('mismatch', `asked for ${n} root ports, libvirt made ${rootPorts.length}`, { host: host.name });
      if (disks[0]?.pciBus !== n)
        throw new ProductError('mismatch', `the probe disk is on bus ${disks[0]?.pciBus}, not behind root port ${n}`, { host: host.name });
    } catch (e) {
      if (e instanceof DefineRejected) return done('define-rejected', e.libvirtMessage);
      throw e;
    }
    // At start libvirt writes the vars template into a new nvram byte by byte (64 MiB, seconds on a
    // busy host); a sparse copy made first is the same bytes, and libvirt uses a file that exists.
    // Without GNU cp nothing is left behind and libvirt makes it as before.
    const nvram = shellQuote(spec.uefi!.nvram);
    await timed('nvram', () =>
      host.run(`cp --sparse=always ${shellQuote(s.firmware.varsTemplate)} ${nvram} 2>/dev/null || rm -f ${nvram}`),
    );
    await timed('start', () => virsh.start(name));
    // The serial log is read from its first byte, so following it once the domain runs misses nothing;
    // over the session's kept SFTP channel, not a channel (a login shell on the host) per probe.
    const serial = host.ssh.followFile(spec.serialLog, { intervalMs: SERIAL_POLL_MS });
    const serialConsole = Console.fromStreams(serial, undefined, {
      name: host.name,
      logPath: join(host.opts.logDir, `${name}-serial.log`),
    });
    console = serialConsole;
    const tStart = performance.now();
    try {
      const m = await console.expect([PROBE_MARKER, UEFI_SHELL], { timeoutMs: s.timeoutMs, what: `the probe verdict of ${name}` });
      guestMs = performance.now() - tStart;
      if (m.patternIndex === 1) return done('firmware-stuck', 'the firmware stopped at the UEFI shell');
      const [, verdict, bridges, pci] = m.match;
      return verdict === 'present'
        ? done('booted', `kernel up, probe disk behind root port ${n} visible; ${bridges} bridges, ${pci} PCI functions`)
        : done('device-missing', `kernel up, no probe disk behind root port ${n}; ${bridges} bridges, ${pci} PCI functions`);
    } catch (e) {
      guestMs = performance.now() - tStart;
      if (e instanceof ProductError && e.kind === 'panic') return done('panic', e.message.split('\n')[0]!);
      if (e instanceof ProductError && e.kind === 'timeout') {
        // A boot wait that ran out says nothing about N on a slow lab: 'timeout' is unknown, never a failed probe.
        const started = KERNEL_STARTED.test(console.text(0));
        return done(
          'timeout',
          started ? `kernel started but gave no verdict within ${s.timeoutMs} ms` : `no hand-over to the kernel within ${s.timeoutMs} ms`,
        );
      }
      throw e;
    } finally {
      await timed('console-close', () => serialConsole.close());
    }
  } finally {
    await timed('remove', () => virsh.remove(name));
    await timed('cleanup', async () => {
      await console?.close();
      await host.run(`rm -f ${shellQuote(spec.serialLog)}`);
    });
    if (record) {
      const totalMs = performance.now() - t0;
      phases.guest = guestMs;
      for (const k of Object.keys(phases)) phases[k] = Math.round(phases[k]!);
      Object.assign(record, {
        seconds: +(totalMs / 1000).toFixed(1),
        guestMs: Math.round(guestMs),
        harnessMs: Math.round(totalMs - guestMs),
      });
    }
  }
}
