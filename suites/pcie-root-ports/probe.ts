/**
 * One probe of the root-port ceiling: a fresh domain with N pcie-root-port controllers and the
 * probe disk behind the last one, booted once, its serial log watched until one outcome. The
 * domain and its nvram are removed whatever happened.
 */
import { join } from 'node:path';
import { Console } from '../../drivers/console.js';
import type { DomainSpec } from '../../drivers/domain-xml.js';
import { ProductError } from '../../drivers/errors.js';
import { DefineRejected, type Virsh } from '../../drivers/libvirt.js';
import { shellQuote } from '../../drivers/ssh.js';
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
  /** Our share of the probe: define, start, destroy, undefine. */
  harnessMs: number;
  /** From `virsh start` returning to the outcome on the console. */
  guestMs: number;
}

const MARKER = /LABRIG-PROBE: (present|missing) bridges=(\d+) pci=(\d+)/;
const UEFI_SHELL = /Shell> |UEFI Interactive Shell/;
const KERNEL_STARTED = /Booting Linux|Linux version \d/;

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
    rootPortIoReserve: s.ioReserve,
    disks: [{ source: s.probeDisk, format: 'raw', target: 'vda', serial: s.probeSerial, readonly: true, behindLastRootPort: true }],
    serialLog: join(s.workDir, `${name}-serial.log`),
  };
}

export async function probeRootPorts(host: Host, virsh: Virsh, n: number, s: ProbeSettings): Promise<ProbeRecord> {
  const name = harnessName(`pcie-${n}`, runContext().runId);
  const spec = probeSpec(n, name, s);
  const t0 = performance.now();
  let harnessMs = 0;
  let guestMs = 0;
  let xml = '';
  let console: Console | undefined;
  const done = (outcome: Outcome, reason: string): ProbeRecord => ({
    n, ok: outcome === 'booted', ...(outcome === 'timeout' ? { unknown: true } : {}), outcome, reason, seconds: +((performance.now() - t0) / 1000).toFixed(1),
    xml, consoleText: console?.text(0) ?? '', harnessMs: Math.round(harnessMs), guestMs: Math.round(guestMs),
  });
  try {
    const tDefine = performance.now();
    try {
      const defined = await virsh.define(spec);
      xml = defined.xml;
      const { rootPorts, disks } = defined.summary;
      if (rootPorts.length !== n) throw new ProductError('mismatch', `asked for ${n} root ports, libvirt made ${rootPorts.length}`, { host: host.name });
      if (disks[0]?.pciBus !== n) throw new ProductError('mismatch', `the probe disk is on bus ${disks[0]?.pciBus}, not behind root port ${n}`, { host: host.name });
    } catch (e) {
      if (e instanceof DefineRejected) return done('define-rejected', e.libvirtMessage);
      throw e;
    }
    const log = spec.serialLog;
    await host.run(`rm -f ${shellQuote(log)}`);
    const stream = await host.ssh.openCommand(`exec tail -c +1 -F ${shellQuote(log)} 2>/dev/null`);
    console = Console.fromStreams(stream.stdout, undefined, { name: host.name, logPath: join(host.opts.logDir, `${name}-serial.log`) });
    await virsh.start(name);
    harnessMs += performance.now() - tDefine;
    const tStart = performance.now();
    try {
      const m = await console.expect([MARKER, UEFI_SHELL], { timeoutMs: s.timeoutMs, what: `the probe verdict of ${name}` });
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
        return done('timeout', started ? `kernel started but gave no verdict within ${s.timeoutMs} ms` : `no hand-over to the kernel within ${s.timeoutMs} ms`);
      }
      throw e;
    } finally {
      await stream.close();
    }
  } finally {
    const tRemove = performance.now();
    await virsh.remove(name);
    harnessMs += performance.now() - tRemove;
    await console?.close();
    await host.run(`rm -f ${shellQuote(spec.serialLog)}`);
  }
}
