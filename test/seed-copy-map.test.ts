/**
 * The seed copy's mapping (targets/emulated/seed-copy.ts) without booting anything: the seed
 * lab as written, onto the lab entries the emulated hosts give for a running lab (built here
 * from records shaped as state.json holds them). test/seed-copy.test.ts runs it for real.
 */
import { expect, test } from '@playwright/test';
import { lab as seedInput } from '../labs/seed-lab.config.js';
import { parseLab } from '../targets/config.js';
import { emuArm64LabHost } from '../targets/emulated/emu-arm64.js';
import { emuX86Pmem } from '../targets/emulated/emu-x86-pmem.js';
import { emuXen } from '../targets/emulated/emu-xen.js';
import type { VmHostRecord } from '../targets/emulated/hosts.js';
import { overrideLines, seedOntoEmulated } from '../targets/emulated/seed-copy.js';
import type { Arm64HostRecord } from '../targets/emulated/state.js';

const KEY = 'SHA256:EVf8cHJrc38xEEFySA4Ta65nldLhcVKKTwDhH80f7CA';
const vm = (name: string, sshPort: number, extra: Partial<VmHostRecord> = {}): VmHostRecord => ({
  kind: 'qemu',
  name,
  pid: 1,
  argv: [],
  qmpSocket: `/run/x/${name}.qmp`,
  labQmpSocket: `/run/x/${name}.lab.qmp`,
  pidFile: `/run/x/${name}.pid`,
  consoleLog: `/run/x/${name}-console.log`,
  qemuLog: `/run/x/${name}-qemu.log`,
  pty: '/dev/pts/9',
  ttyLink: `/run/x/${name}.tty`,
  sshPort,
  identityFile: '/keys/id',
  knownHosts: '/run/x/kh',
  hostKey: KEY,
  imageDir: '/img',
  startArgv: ['/bin/true'],
  startedAt: '',
  ...extra,
});
const arm64 = {
  kind: 'sshd',
  name: 'emu-arm64',
  pid: 1,
  address: '127.0.0.1',
  port: 2622,
  user: 'root',
  identityFile: '/keys/id',
  hostKey: KEY,
  knownHosts: '/run/x/kh',
  dir: '/run/x/emu-arm64',
  configFile: '/run/x/emu-arm64/sshd_config',
  daemons: [],
  startedAt: '',
} satisfies Arm64HostRecord;

const emulated = (hosts = ['emu-arm64', 'emu-xen', 'emu-x86-pmem']) =>
  parseLab({
    name: 'emulated',
    parallelHosts: 1,
    hosts: [
      emuArm64LabHost(arm64),
      emuXen.labHost(
        vm('emu-xen', 2636, {
          address: '127.0.0.3',
          ser2net: { pid: 1, configFile: '/c', address: '127.0.0.3', port: 2736, log: '/l' },
        }),
      ),
      emuX86Pmem.labHost(vm('emu-x86-pmem', 2637)),
    ]
      .filter((h) => hosts.includes(h.name))
      .map((h) => ({ ...h, accel: 'tcg' as const })),
  });

test('each seed host at the emulated host of its role; the seed suite blocks kept; every changed value named once', () => {
  const seed = parseLab(seedInput);
  const { lab, overrides } = seedOntoEmulated(seed, emulated());
  const host = (n: string) => lab.hosts.find((h) => h.name === n)!;
  expect(lab.hosts.map((h) => [h.name, h.ssh.address, h.ssh.port])).toEqual([
    ['mp30-ar1', '127.0.0.1', 2622],
    ['kunpeng920', '127.0.0.1', 2622],
    ['x86-pmem', '127.0.0.1', 2637],
    ['xen-freebsd', '127.0.0.3', 2636],
    ['xen-arch', '127.0.0.3', 2636],
  ]);
  expect(host('xen-arch').console).toMatchObject({ kind: 'tcp', address: '127.0.0.3', port: 2736, telnet: true });
  expect(host('mp30-ar1').console).toBeUndefined();
  expect(host('kunpeng920').expect.features).toEqual(['libvirt', 'uefi', 'qemu']);
  expect(host('kunpeng920').suites.pcieRootPorts).toMatchObject({
    machineTypes: ['virt-2.12'],
    upper: 28,
    expectCeiling: { 'virt-2.12': 15 },
  });
  expect(host('kunpeng920').suites.pcieRootPorts?.cpu).toEqual({ mode: 'custom', model: 'cortex-a57' });
  expect(host('x86-pmem').suites.snapshotKexec).toMatchObject({ machine: 'q35', modes: ['devdax', 'fsdax'], qemu: 'qemu-system-x86_64' });
  expect(host('xen-freebsd').os).toBe('freebsd');
  // A rule never adds a block the seed does not have.
  expect(host('x86-pmem').suites.xen).toBeUndefined();
  expect(host('xen-freebsd').suites.xen?.pvGuest).toBeUndefined();
  // The copy parses as a lab, and every override is one line naming host and field.
  expect(() => parseLab(JSON.parse(JSON.stringify(lab)))).not.toThrow();
  const fields = overrides.map((o) => `${o.host} ${o.field}`);
  expect(new Set(fields).size).toBe(fields.length);
  expect(fields).toEqual(
    expect.arrayContaining(['kunpeng920 suites.pcieRootPorts.firmware', 'xen-arch suites.xen.pvGuest.kernel', '(lab) parallelHosts']),
  );
  expect(fields.filter((f) => f.includes('expectCeiling') || f.includes('machineTypes') || f.endsWith(' os'))).toEqual([]);
  expect(overrideLines(overrides).every((l) => /^\S+ \S+: \S/.test(l))).toBe(true);
});

test('a seed host whose emulated host is not up: one line saying which host to bring up', () => {
  expect(() => seedOntoEmulated(parseLab(seedInput), emulated(['emu-arm64', 'emu-xen']))).toThrow(
    /seed host x86-pmem needs emu-x86-pmem, which is not up: `npx labrig lab up emu-x86-pmem`/,
  );
});
