/**
 * What a crashed run left, told from everything else on a host: only names that carry the
 * harness's prefix and another run's tag, only QEMU processes whose own `-name` argument is such
 * a name, only mounts under the harness's folders.
 */
import { expect, test } from '@playwright/test';
import { harnessName, parseHarnessName, runTag } from '../targets/harness-name.js';
import { findLeftovers, harnessFolders, qemuHarnessName } from '../targets/sweep.js';

const other = runTag('2026-12-01T02-00-00-000Z-0badc0de');
const current = 'run-now';
const mine = runTag(current);
const S = '\x1f';

test('harness names carry the run tag and parse back; anything else does not parse', () => {
  const n = harnessName('pcie-15', current);
  expect(n).toMatch(new RegExp(`^labrig-pcie-15-${mine}-[0-9a-f]{6}$`));
  expect(parseHarnessName(n)).toEqual({ kind: 'pcie-15', runTag: mine });
  for (const name of [
    'labrig-pcie-15-9f0e1d',
    `xlabrig-pcie-15-${other}-9f0e1d`,
    `labrig-pcie-15-${other}-9f0e1d-x`,
    'labrig',
    `labrig-${other}-9f0e1d`,
  ])
    expect(parseHarnessName(name), name).toBeUndefined();
  expect(() => harnessName('Bad Kind', current)).toThrow('harness name kind "Bad Kind"');
});

test('a QEMU is ours only by its own -name argument; a name elsewhere on the line, or another program, is not', () => {
  const ours = `labrig-guest-devdax-${other}-abcdef`;
  expect(qemuHarnessName(['/usr/bin/qemu-system-x86_64', '-name', ours, '-S'])).toEqual({ name: ours, runTag: other });
  expect(qemuHarnessName(['qemu-system-aarch64', '-name', `guest=${ours},debug-threads=on`])).toEqual({ name: ours, runTag: other });
  expect(qemuHarnessName(['qemu-system-x86_64', '-name', 'emu-mini', '-append', ours])).toBeUndefined();
  expect(qemuHarnessName(['/bin/sleep', '-name', ours])).toBeUndefined();
  expect(qemuHarnessName(['qemu-system-x86_64', '-name'])).toBeUndefined();
});

test("a listing: other runs' domains, QEMUs and mounts are found; this run's, look-alikes and others' are not", () => {
  const listing = [
    '@@virsh',
    `labrig-pcie-15-${other}-9f0e1d`,
    `labrig-pcie-16-${mine}-111111`,
    'labrig-pcie-15-9f0e1d',
    'seed-000-armhf',
    '@@xl',
    'Name                                        ID   Mem VCPUs\tState\tTime(s)',
    'Domain-0                                     0  1024     1     r-----      12.3',
    `labrig-pv-${other}-a1b2c3                    3   128     1     -b----       0.4`,
    'labrig-pv-a1b2c3                             4   128     1     -b----       0.4',
    '@@procs',
    `412 /usr/bin/qemu-system-x86_64${S}-name${S}labrig-guest-fsdax-${other}-00ff00${S}-S${S}`,
    `413 /usr/bin/qemu-system-x86_64${S}-name${S}emu-mini${S}`,
    `414 sleep${S}-name${S}labrig-guest-fsdax-${other}-00ff00${S}`,
    '@@mounts',
    '/dev/vda1 / ext4 rw 0 0',
    'tmpfs /var/lib/labrig tmpfs rw 0 0',
    'tmpfs /var/lib/labrig/run\\040x tmpfs rw 0 0',
    '/dev/pmem0 /mnt/labrig-pmem ext4 rw,dax 0 0',
    'tmpfs /var/lib/labrig-other tmpfs rw 0 0',
  ].join('\n');
  const folders = harnessFolders('/var/lib/labrig', {
    snapshotKexec: { workDir: '/var/lib/labrig-snapshot-kexec', fsdaxMount: '/mnt/labrig-pmem' },
  });
  const { leftovers, notes } = findLeftovers(listing, { runId: current, ...folders });
  expect(notes).toEqual([]);
  expect(leftovers.map((l) => `${l.what}: ${l.id}`)).toEqual([
    `libvirt domain: labrig-pcie-15-${other}-9f0e1d`,
    `xl domain: labrig-pv-${other}-a1b2c3`,
    `qemu process: 412 labrig-guest-fsdax-${other}-00ff00`,
    'mount: /var/lib/labrig/run x',
    'mount: /mnt/labrig-pmem',
  ]);
  expect(leftovers[2]).toMatchObject({
    pid: 412,
    runTag: other,
    cmdline: `/usr/bin/qemu-system-x86_64${S}-name${S}labrig-guest-fsdax-${other}-00ff00${S}-S${S}`,
  });
});

test('a hypervisor that does not answer is noted, not guessed; a listing without its sections is refused', () => {
  const r = findLeftovers('@@virsh\n!unreachable\n@@xl\n!unreachable\n@@procs\n@@mounts\n', { runId: current, folders: [] });
  expect(r).toEqual({
    leftovers: [],
    notes: ['libvirt did not answer: its domains not checked', 'xl did not answer: its domains not checked'],
  });
  expect(() => findLeftovers('@@virsh\n', { runId: current, folders: [] })).toThrow('leftovers listing lacks its @@xl section');
});
