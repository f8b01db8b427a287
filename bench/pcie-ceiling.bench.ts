/**
 * Probes and wall time to the root-port ceiling on emu-arm64 (bounds 1..28), per machine type,
 * and the share of each probe that is the harness (define, start, console, destroy, clean-up)
 * rather than the guest's boot, with the mean time of each phase of a probe.
 * Needs the lab: `npx labrig lab up emu-arm64` first.
 * Run: npx tsx bench/pcie-ceiling.bench.ts
 */
import { join } from 'node:path';
import { Virsh } from '../drivers/libvirt.js';
import { consoleRecorder } from '../drivers/recorder.js';
import { aarch64ProbeGuest } from '../images/aarch64-probe-guest.js';
import { PROBE_SERIAL } from '../images/contracts/probe-guest.js';
import { bisectCeiling, ceilingFinding } from '../suites/pcie-root-ports/bisect.js';
import { type ProbeRecord, probeRootPorts } from '../suites/pcie-root-ports/probe.js';
import { domainTypeOf, hostAccel } from '../targets/accel.js';
import { loadLab } from '../targets/config.js';
import { Host } from '../targets/host.js';
import { pcieRootPortsSchema } from '../targets/schema.js';

const lab = await loadLab();
const config = lab.hosts.find((h) => h.name === 'emu-arm64');
if (!config) throw new Error('emu-arm64 is not in the lab: npx labrig lab up emu-arm64');
const p = config.suites.pcieRootPorts ?? pcieRootPortsSchema.parse({});
const host = new Host(config, { logDir: '/tmp/labrig-bench-pcie', recorder: consoleRecorder('  ') });
const virsh = new Virsh(host);
const domainType = p.domainType ?? domainTypeOf((await hostAccel(host)).accel);
const img = await aarch64ProbeGuest(() => undefined);
await host.run(`mkdir -p ${p.workDir}; test -e ${p.workDir}/probe.raw || truncate -s 1M ${p.workDir}/probe.raw`, { check: true });
await host.ssh.put(img.file('kernel'), join(p.workDir, 'probe-vmlinuz'));
await host.ssh.put(img.file('initrd'), join(p.workDir, 'probe-initrd.img'));
try {
  for (const mt of p.machineTypes) {
    const machine =
      mt === 'newest'
        ? (/<machine>([^<]+)<\/machine>/.exec(await virsh.domcapabilities('aarch64', 'virt', domainType))?.[1] ?? 'virt')
        : mt;
    const records: ProbeRecord[] = [];
    const t0 = performance.now();
    const r = await bisectCeiling(Math.max(p.lower, p.portDevices.length + 1), p.upper, async (n) => {
      const rec = await probeRootPorts(host, virsh, n, {
        machine,
        domainType,
        cpu: p.cpu,
        memoryMiB: p.memoryMiB,
        packRootPorts: p.packRootPorts,
        portDevices: p.portDevices,
        ioReserve: p.ioReserve,
        firmware: p.firmware,
        kernel: join(p.workDir, 'probe-vmlinuz'),
        initrd: join(p.workDir, 'probe-initrd.img'),
        cmdline: 'console=ttyAMA0',
        probeDisk: join(p.workDir, 'probe.raw'),
        probeSerial: PROBE_SERIAL,
        workDir: p.workDir,
        timeoutMs: p.probeTimeoutMs,
      });
      records.push(rec);
      const phases = Object.entries(rec.phases)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ');
      process.stdout.write(`  N=${n} ${rec.outcome} ${rec.seconds} s (harness ${rec.harnessMs} ms, guest ${rec.guestMs} ms; ${phases})\n`);
      return rec;
    });
    const wall = (performance.now() - t0) / 1000;
    const harness = records.reduce((s, x) => s + x.harnessMs, 0) / 1000;
    const mean = new Map<string, number>();
    for (const rec of records) for (const [k, v] of Object.entries(rec.phases)) mean.set(k, (mean.get(k) ?? 0) + v / records.length);
    // `virsh start` and the removal are mostly libvirt and QEMU starting and tearing down a process:
    // shown apart, so that what the harness itself adds (SSH, shell, console) is visible.
    const libvirt = records.reduce((s, x) => s + (x.phases.start ?? 0) + (x.phases.remove ?? 0), 0) / 1000;
    const pct = (x: number) => `${((100 * x) / wall).toFixed(1)} %`;
    process.stdout.write(
      `${machine}: ceiling ${ceilingFinding(r.verdict)}, ${records.length} boots, ${wall.toFixed(1)} s wall, ` +
        `${(wall / records.length).toFixed(1)} s per probe, harness share ${pct(harness)} ` +
        `(virsh start and remove ${pct(libvirt)}, the rest ${pct(harness - libvirt)})\n` +
        `  mean ms per probe: ${[...mean].map(([k, v]) => `${k} ${Math.round(v)}`).join(', ')}\n`,
    );
  }
} finally {
  await host.close();
}
