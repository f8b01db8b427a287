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
import { aarch64ProbeGuest, PROBE_SERIAL } from '../targets/emulated/aarch64-probe-guest.js';
import { expect, test } from '../targets/fixtures.js';
import { qemuBuildBinary } from '../targets/components.js';
import type { Host } from '../targets/host.js';
import { loadLab } from '../targets/config.js';
import { pcieRootPortsSchema, type PcieRootPortsParams as Params } from '../targets/schema.js';
import { bisectCeiling, ceilingFinding } from './pcie-root-ports/bisect.js';
import { probeRootPorts, type ProbeRecord, type ProbeSettings } from './pcie-root-ports/probe.js';

const hostParams = (host: Host): Params => host.config.suites.pcieRootPorts ?? pcieRootPortsSchema.parse({});

/** One test per machine type any pcie host of the lab asks for; a host skips the ones it does not. */
const lab = await loadLab();
const machineTypes = [
  ...new Set(lab.hosts.filter((h) => h.role.includes('arm64-kunpeng')).flatMap((h) => (h.suites.pcieRootPorts ?? pcieRootPortsSchema.parse({})).machineTypes)),
];

/** Puts a runner file on the host unless the same bytes are already there. */
async function upload(host: Host, local: string, remote: string): Promise<void> {
  const sha = createHash('sha256').update(await readFile(local)).digest('hex');
  const there = (await host.run(`sha256sum ${shellQuote(remote)} 2>/dev/null`)).stdout.split(' ')[0];
  if (there !== sha) await host.ssh.put(local, remote);
}

async function guestFiles(host: Host, p: Params): Promise<{ kernel: string; initrd: string; cmdline: string }> {
  let guest = p.guest;
  if (!guest) {
    const img = await aarch64ProbeGuest(() => undefined);
    guest = { kernel: img.file('kernel'), initrd: img.file('initrd'), cmdline: 'console=ttyAMA0' };
  }
  await host.run(`mkdir -p ${shellQuote(p.workDir)} && test -e ${shellQuote(`${p.workDir}/probe.raw`)} || truncate -s 1M ${shellQuote(`${p.workDir}/probe.raw`)}`, { check: true });
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
      test.skip(!p.machineTypes.includes(machineType), `machine type ${machineType} is not in this host's pcieRootPorts.machineTypes (${p.machineTypes.join(', ')})`);
      test.setTimeout(p.probeTimeoutMs * 12 + 10 * 60_000);
      const virsh = new Virsh(host);
      const emulator = qemuBuildBinary(host.config, 'qemu-system-aarch64');
      const machine = await test.step('resolve the machine type', async () => {
        if (machineType !== 'newest') return machineType;
        const caps = await virsh.domcapabilities('aarch64', 'virt', p.domainType, emulator);
        return /<machine>([^<]+)<\/machine>/.exec(caps)?.[1] ?? 'virt';
      });
      const versions = await test.step('record versions', async () => ({ ...(await virsh.version()), edk2: (await host.facts()).edk2 ?? 'unknown' }));
      const files = await test.step('put the probe guest on the host', () => guestFiles(host, p));
      const settings: ProbeSettings = {
        machine, emulator, domainType: p.domainType, cpu: p.cpu, memoryMiB: p.memoryMiB, packRootPorts: p.packRootPorts, ioReserve: p.ioReserve,
        firmware: p.firmware, ...files, probeDisk: join(p.workDir, 'probe.raw'), probeSerial: PROBE_SERIAL, workDir: p.workDir, timeoutMs: p.probeTimeoutMs,
      };
      const records: ProbeRecord[] = [];
      const result = await bisectCeiling(
        p.lower,
        p.upper,
        (n) =>
          test.step(`probe: ${n} root ports on ${machine}`, async () => {
            const r = await probeRootPorts(host, virsh, n, settings);
            records.push(r);
            await test.info().attach(`probe-${n}-${records.length}-console.log`, { body: r.consoleText, contentType: 'text/plain' });
            if (r.xml) await test.info().attach(`probe-${n}-${records.length}-domain.xml`, { body: r.xml, contentType: 'application/xml' });
            await test.info().attach(`probe-${n}-${records.length}-outcome.txt`, { body: `N=${n} ${r.outcome} in ${r.seconds} s: ${r.reason}\n`, contentType: 'text/plain' });
            return r;
          }),
        { spotChecks: p.spotChecks },
      );
      const ceiling = ceilingFinding(result.verdict);
      await test.info().attach('probes.json', {
        body: JSON.stringify(records.map(({ xml: _x, consoleText: _c, ...r }) => r), null, 2),
        contentType: 'application/json',
      });
      const total = records.reduce((s, r) => s + r.seconds, 0);
      const harness = records.reduce((s, r) => s + r.harnessMs, 0) / 1000;
      findings.record(`ceiling_${machineType}`, ceiling);
      findings.record(`probes_${machineType}`, records.length);
      findings.record('upper_bound', p.upper);
      findings.record(`machine_type_${machineType}`, machine);
      findings.record(`wall_s_${machineType}`, +total.toFixed(1), 's');
      findings.record(`harness_share_${machineType}`, +(harness / total).toFixed(3));
      findings.record('qemu', versions.hypervisor);
      findings.record('libvirt', versions.libvirt);
      findings.record('edk2', versions.edk2);
      if (result.verdict.kind === 'undetermined') {
        const v = result.verdict;
        throw new LabError('lab-timeout', `the root-port ceiling on ${machine} is not determined: N=${v.at} timed out on all ${v.tries} tries (${v.reason}); known so far: ${v.atLeast === null ? 'nothing boots yet' : `${v.atLeast} boots`}`, { host: host.name });
      }
      if (result.verdict.kind === 'non-monotonic')
        throw new ProductError('mismatch', `the probes contradict each other on ${machine}: ${result.verdict.contradictions.join('; ')}`, { host: host.name });
      expect(result.verdict.kind, `on ${machine} not even ${p.lower} root port(s) boot: ${records[0]?.reason}`).not.toBe('nothing-boots');
      const expected = p.expectCeiling[machineType];
      if (expected !== undefined) expect(ceiling, `the root-port ceiling on ${machine} moved`).toBe(expected);
    });
  }
});
