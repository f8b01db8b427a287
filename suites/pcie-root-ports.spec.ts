/**
 * The pcie-root-port ceiling (seeds/001, DOMAIN §2): the largest number of root ports with
 * which an aarch64 `virt` UEFI guest boots AND reaches the device behind the last port, found
 * by bisection, one boot per probe, per machine type.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LabError, ProductError } from '../drivers/errors.js';
import { Virsh } from '../drivers/libvirt.js';
import { shellQuote } from '../drivers/ssh.js';
import { aarch64ProbeGuest } from '../images/aarch64-probe-guest.js';
import { PROBE_SERIAL } from '../images/contracts/probe-guest.js';
import { domainTypeOf, hostAccel } from '../targets/accel.js';
import { qemuBuildBinary } from '../targets/components.js';
import { libvirtEndpoint } from '../targets/components-libvirtd.js';
import { loadLab } from '../targets/config.js';
import { expect, test } from '../targets/fixtures.js';
import type { Host } from '../targets/host.js';
import { type PcieRootPortsParams as Params, pcieRootPortsSchema } from '../targets/schema.js';
import { bisectCeiling, ceilingFinding } from './pcie-root-ports/bisect.js';
import { type ProbeRecord, type ProbeSettings, probeRootPorts } from './pcie-root-ports/probe.js';

const hostParams = (host: Host): Params => host.config.suites.pcieRootPorts ?? pcieRootPortsSchema.parse({});

/** One test per machine type any pcie host of the lab asks for; a host skips the ones it does not. */
const lab = await loadLab();
const machineTypes = [
  ...new Set(
    lab.hosts
      .filter((h) => h.role.includes('arm64-kunpeng'))
      .flatMap((h) => (h.suites.pcieRootPorts ?? pcieRootPortsSchema.parse({})).machineTypes),
  ),
];

/** Puts a runner file on the host unless the same bytes are already there. */
async function upload(host: Host, local: string, remote: string): Promise<void> {
  const sha = createHash('sha256')
    .update(await readFile(local))
    .digest('hex');
  const there = (await host.run(`sha256sum ${shellQuote(remote)} 2>/dev/null`)).stdout.split(' ')[0];
  if (there !== sha) await host.ssh.put(local, remote);
}

async function guestFiles(host: Host, p: Params): Promise<{ kernel: string; initrd: string; cmdline: string }> {
  let guest = p.guest;
  if (!guest) {
    const img = await aarch64ProbeGuest(() => undefined);
    guest = { kernel: img.file('kernel'), initrd: img.file('initrd'), cmdline: 'console=ttyAMA0' };
  }
  await host.run(
    `mkdir -p ${shellQuote(p.workDir)} && test -e ${shellQuote(`${p.workDir}/probe.raw`)} || truncate -s 1M ${shellQuote(`${p.workDir}/probe.raw`)}`,
    { check: true },
  );
  const kernel = join(p.workDir, 'probe-vmlinuz');
  const initrd = join(p.workDir, 'probe-initrd.img');
  await upload(host, guest.kernel, kernel);
  await upload(host, guest.initrd, initrd);
  return { kernel, initrd, cmdline: guest.cmdline };
}

test.describe('pcie-root-port ceiling @pcie', () => {
  for (const machineType of machineTypes) {
    test(`ceiling with machine type ${machineType}`, async ({ host, findings }) => {
      const p = hostParams(host);
      test.skip(
        !p.machineTypes.includes(machineType),
        `machine type ${machineType} is not in this host's pcieRootPorts.machineTypes (${p.machineTypes.join(', ')})`,
      );
      test.setTimeout(p.probeTimeoutMs * 12 + 10 * 60_000);
      const virsh = new Virsh(host, libvirtEndpoint(host.config));
      const emulator = qemuBuildBinary(host.config, 'qemu-system-aarch64');
      const accel = await hostAccel(host);
      const domainType = p.domainType ?? domainTypeOf(accel.accel);
      findings.record('domain_type', domainType);
      findings.record('accel_evidence', p.domainType ? `set in pcieRootPorts.domainType` : accel.evidence);
      const machine = await test.step('resolve the machine type', async () => {
        if (machineType !== 'newest') return machineType;
        const caps = await virsh.domcapabilities('aarch64', 'virt', domainType, emulator);
        return /<machine>([^<]+)<\/machine>/.exec(caps)?.[1] ?? 'virt';
      });
      const versions = await test.step('record versions: the QEMU the domains run, libvirt, the firmware package', async () => {
        // A QEMU build (components.qemuDir) is what runs, not libvirt's default emulator.
        const v = await virsh.version(emulator);
        return {
          libvirt: v.libvirt,
          hypervisor: v.hypervisor,
          emulator: emulator ?? 'libvirt default',
          edk2: (await host.facts()).edk2 ?? 'unknown',
        };
      });
      const files = await test.step('put the probe guest on the host', () => guestFiles(host, p));
      const settings: ProbeSettings = {
        machine,
        emulator,
        domainType,
        cpu: p.cpu,
        memoryMiB: p.memoryMiB,
        packRootPorts: p.packRootPorts,
        portDevices: p.portDevices,
        ioReserve: p.ioReserve,
        firmware: p.firmware,
        ...files,
        probeDisk: join(p.workDir, 'probe.raw'),
        probeSerial: PROBE_SERIAL,
        workDir: p.workDir,
        timeoutMs: p.probeTimeoutMs,
      };
      const records: ProbeRecord[] = [];
      // The port devices sit on ports 1…k: a probe needs one more port for the probe disk.
      const lower = Math.max(p.lower, p.portDevices.length + 1);
      const result = await bisectCeiling(
        lower,
        p.upper,
        (n) =>
          test.step(`probe: ${n} root ports on ${machine}`, async () => {
            const r = await probeRootPorts(host, virsh, n, settings);
            records.push(r);
            await test.info().attach(`probe-${n}-${records.length}-console.log`, { body: r.consoleText, contentType: 'text/plain' });
            if (r.xml) await test.info().attach(`probe-${n}-${records.length}-domain.xml`, { body: r.xml, contentType: 'application/xml' });
            await test.info().attach(`probe-${n}-${records.length}-outcome.txt`, {
              body: `N=${n} ${r.outcome} in ${r.seconds} s: ${r.reason}\n`,
              contentType: 'text/plain',
            });
            return r;
          }),
        { spotChecks: p.spotChecks },
      );
      const ceiling = ceilingFinding(result.verdict);
      await test.info().attach('probes.json', {
        body: JSON.stringify(
          records.map(({ xml: _x, consoleText: _c, ...r }) => r),
          null,
          2,
        ),
        contentType: 'application/json',
      });
      const total = records.reduce((s, r) => s + r.seconds, 0);
      const harness = records.reduce((s, r) => s + r.harnessMs, 0) / 1000;
      findings.record(`ceiling_${machineType}`, ceiling);
      findings.record('port_devices', p.portDevices.join(' ') || 'none');
      // Seed 001's way: 15 ports in all, of which xhci and video take 2, leaves 13 for devices.
      if (typeof ceiling === 'number') findings.record(`ports_left_${machineType}`, ceiling - p.portDevices.length);
      findings.record(`probes_${machineType}`, records.length);
      findings.record('upper_bound', p.upper);
      findings.record(`machine_type_${machineType}`, machine);
      findings.record(`wall_s_${machineType}`, +total.toFixed(1), 's');
      findings.record(`harness_share_${machineType}`, +(harness / total).toFixed(3));
      findings.record('qemu', versions.hypervisor);
      findings.record('qemu_binary', versions.emulator);
      // The loader the probe domains were defined with (the file libvirt ran), and the knobs in force.
      findings.record('firmware', /<loader[^>]*>([^<]+)<\/loader>/.exec(records.find((r) => r.xml)?.xml ?? '')?.[1] ?? p.firmware.loader);
      findings.record('cpu', p.cpu.model ? `${p.cpu.mode} ${p.cpu.model}` : p.cpu.mode);
      findings.record('io_reserve', p.ioReserve ?? 'default');
      findings.record('pack_root_ports', p.packRootPorts);
      findings.record('libvirt', versions.libvirt);
      findings.record('edk2', versions.edk2);
      if (result.verdict.kind === 'undetermined') {
        const v = result.verdict;
        throw new LabError(
          'lab-timeout',
          `the root-port ceiling on ${machine} is not determined: N=${v.at} timed out on all ${v.tries} tries (${v.reason}); known so far: ${v.atLeast === null ? 'nothing boots yet' : `${v.atLeast} boots`}`,
          { host: host.name },
        );
      }
      if (result.verdict.kind === 'non-monotonic')
        throw new ProductError('mismatch', `the probes contradict each other on ${machine}: ${result.verdict.contradictions.join('; ')}`, {
          host: host.name,
        });
      expect(result.verdict.kind, `on ${machine} not even ${lower} root port(s) boot: ${records[0]?.reason}`).not.toBe('nothing-boots');
      const expected = p.expectCeiling[machineType];
      if (expected !== undefined) expect(ceiling, `the root-port ceiling on ${machine} moved`).toBe(expected);
    });
  }
});
