/**
 * The snapshot → kexec → restore suite's pure logic: the guest's marker and pattern, the
 * continuation verdict, the nested QEMU argv, the guest initramfs, host-preparation parsers
 * and the choice of the kexec target. The pattern is checked against the real busybox
 * `yes | head -c | sha256sum` the guest runs; the initramfs is read back by GNU cpio.
 */
import { test, expect } from '@playwright/test';
import { readFile } from 'node:fs/promises';
import { runLocal } from '../drivers/local.js';
import { guestAppend, guestArgv, type GuestSpec } from '../suites/snapshot-kexec/guest.js';
import { guestInit, guestInitramfs, isStaticElf } from '../images/snapshot-guest.js';
import { memmapPmem, parseCreatedNamespace, parseNdctlRegions } from '../suites/snapshot-kexec/host-prep.js';
import { expectedPatternSha256, newSeed, parseTicks, patternBytes, verifyContinuation, vmStateBytes, type Tick } from '../suites/snapshot-kexec/marker.js';
import { chooseKexecTarget, installedKernels } from '../targets/kexec.js';

const BOOT = '007f89f9-2a4b-4141-b2d6-fa543b403670';
const SHA = '79265420f718980c85d858502b7484cb4985a927527227fac8ffe53a4ee322a8';
const tick = (n: number, bootId = BOOT, sha256 = SHA): Tick => ({ n, bootId, sha256, end: n * 100 });

test('the pattern and its checksum are what the guest computes with busybox yes | head -c | sha256sum', async () => {
  const seed = newSeed();
  expect(seed).toMatch(/^[a-z0-9]{12}$/);
  const r = await runLocal(['sh', '-c', 'busybox yes "labrig-pattern $1" | busybox head -c $(($2 * 1024)) | busybox sha256sum', 'sh', seed, '64']);
  expect(r.stdout.split(/\s+/)[0]).toBe(expectedPatternSha256(seed, 64));
  expect(patternBytes(seed, 4)).toHaveLength(4096);
  expect(expectedPatternSha256(seed, 64)).not.toBe(expectedPatternSha256(newSeed(), 64));
});

test('tick lines are parsed with their byte offsets; a line cut at the end is not a tick yet', () => {
  const log = Buffer.from(`[ 71.2] Run /init as init process\nlabrig-guest ready: seed x\nlabrig-tick 1 ${BOOT} ${SHA}\r\nlabrig-tick 2 ${BOOT} ${SHA}\nlabrig-tick 3 ${BOOT} ${SHA.slice(0, 10)}`, 'latin1');
  const ticks = parseTicks(log);
  expect(ticks.map((t) => t.n)).toEqual([1, 2]);
  expect(log.subarray(0, ticks[1]!.end).toString().endsWith(`${SHA}\n`)).toBe(true);
  // the rest of line 3 arrives after the restore: it counts as the first tick after it
  const later = Buffer.concat([log, Buffer.from(`${SHA.slice(10)}\n`)]);
  expect(parseTicks(later).filter((t) => t.end > log.length).map((t) => t.n)).toEqual([3]);
});

test('continuation: the counter goes on from the last tick, same boot_id, known checksum', () => {
  const ok = verifyContinuation({ before: [tick(1), tick(2), tick(3)], after: [tick(4), tick(5), tick(6)], expectedSha256: SHA, minAfter: 3 });
  expect(ok).toMatchObject({ ok: true, problems: [] });
  expect(ok.lastBefore?.n).toBe(3);
  expect(ok.firstAfter?.n).toBe(4);
});

test('continuation: each way a restore can go wrong is named', () => {
  const before = [tick(7), tick(8)];
  const rebooted = verifyContinuation({ before, after: [tick(1, 'aaaaaaaa-2a4b-4141-b2d6-fa543b403670'), tick(2, 'aaaaaaaa-2a4b-4141-b2d6-fa543b403670')], expectedSha256: SHA, minAfter: 2 });
  expect(rebooted.ok).toBe(false);
  expect(rebooted.problems.join('\n')).toMatch(/started again at 1 \(it was 8 before the stop\)[\s\S]*boot_id changed/);

  const jumped = verifyContinuation({ before, after: [tick(10), tick(11)], expectedSha256: SHA, minAfter: 2 });
  expect(jumped.problems).toEqual(['the first tick after the restore is 10, expected 9 (last before the stop: 8)']);

  const corrupt = verifyContinuation({ before, after: [tick(9, BOOT, 'f'.repeat(64))], expectedSha256: SHA, minAfter: 1 });
  expect(corrupt.problems).toEqual([`tick 9: pattern checksum ${'f'.repeat(64)}, expected ${SHA}`]);

  const silent = verifyContinuation({ before, after: [], expectedSha256: SHA, minAfter: 3 });
  expect(silent.problems).toEqual(['0 tick(s) after the restore, wanted 3: the guest did not run on']);

  const stalled = verifyContinuation({ before, after: [tick(9), tick(9)], expectedSha256: SHA, minAfter: 2 });
  expect(stalled.problems).toEqual(['the counter went from 9 to 9 after the restore']);
});

test('vm-state-size of a snapshot from qemu-img info --output=json', () => {
  const info = JSON.stringify({ format: 'qcow2', snapshots: [{ id: '1', name: 's0', 'vm-state-size': 365_861, 'date-sec': 1 }] });
  expect(vmStateBytes(info, 's0')).toBe(365_861);
  expect(vmStateBytes(info, 's1')).toBeUndefined();
  expect(vmStateBytes(JSON.stringify({ format: 'qcow2' }), 's0')).toBeUndefined();
});

const spec: GuestSpec = {
  name: 'labrig-guest-devdax',
  qemu: 'qemu-system-x86_64',
  accel: 'tcg',
  memoryMiB: 256,
  memPath: '/dev/dax0.0',
  pmemOn: true,
  align: '2M',
  kernel: '/usr/share/labrig/guest/vmlinux',
  initrd: '/var/lib/labrig-snapshot-kexec/guest-initrd.cpio',
  append: guestAppend('console=ttyS0', 'abc123', 64),
  disk: '/var/lib/labrig-snapshot-kexec/devdax.qcow2',
  qmpSocket: '/var/lib/labrig-snapshot-kexec/devdax.qmp',
  serialLog: '/var/lib/labrig-snapshot-kexec/devdax-serial.log',
  pidFile: '/var/lib/labrig-snapshot-kexec/devdax.pid',
};

test('guest argv: all RAM on a shared file backend on pmem, a numa node on it, qcow2, QMP, paused', () => {
  const argv = guestArgv(spec);
  const opt = (name: string) => argv[argv.indexOf(name) + 1];
  expect(opt('-object')).toBe('memory-backend-file,id=pmem0,size=256M,mem-path=/dev/dax0.0,share=on,pmem=on,align=2M');
  expect(opt('-numa')).toBe('node,memdev=pmem0');
  expect(opt('-m')).toBe('256M');
  expect(opt('-drive')).toBe('if=none,id=disk0,format=qcow2,file=/var/lib/labrig-snapshot-kexec/devdax.qcow2');
  expect(opt('-qmp')).toBe('unix:/var/lib/labrig-snapshot-kexec/devdax.qmp,server=on,wait=off');
  expect(opt('-append')).toBe('console=ttyS0 panic=1 labrig.seed=abc123 labrig.pattern_kib=64');
  expect(argv).toEqual(expect.arrayContaining(['-S', '-daemonize', '-no-reboot']));
  // the restore must use the very same argv: a pure function of the spec
  expect(guestArgv(spec)).toEqual(argv);
  // without libpmem, and on an fsdax file, the backend says so
  const fsdax = guestArgv({ ...spec, memPath: '/mnt/labrig-pmem/labrig-guest-ram', pmemOn: false, align: undefined });
  expect(fsdax[fsdax.indexOf('-object') + 1]).toBe('memory-backend-file,id=pmem0,size=256M,mem-path=/mnt/labrig-pmem/labrig-guest-ram,share=on');
  expect(() => guestArgv({ ...spec, memPath: '/mnt/a,b' })).toThrow(/\[lab:config\] mem-path "\/mnt\/a,b" contains a comma/);
});

test('guest initramfs: GNU cpio reads back busybox, applet links, /init and /dev/console', async () => {
  const busybox = await readFile('/bin/busybox');
  expect(isStaticElf(busybox)).toBe(true);
  expect(isStaticElf(await readFile('/bin/ls'))).toBe(false);
  expect(isStaticElf(Buffer.from('#!/bin/sh\n'))).toBe(false);
  const archive = guestInitramfs(busybox);
  const { stdout } = await runLocal(['cpio', '-itv', '--quiet'], { input: archive.toString('latin1') });
  expect(stdout).toMatch(/^-rwxr-xr-x .* root +root +\d+ .* bin\/busybox$/m);
  expect(stdout).toMatch(/^lrwxrwxrwx .* bin\/sha256sum -> busybox$/m);
  expect(stdout).toMatch(/^-rwxr-xr-x .* init$/m);
  expect(stdout).toMatch(/^crw------- .* 5, +1 .* dev\/console$/m);
  // the init script is valid sh and reads its parameters from the kernel command line
  await runLocal(['sh', '-n', '-c', guestInit()]);
  expect(guestInit()).toContain('labrig.seed=*');
});

test('host preparation parsers: ndctl output as this host printed it, memmap= reservations', () => {
  const regions = parseNdctlRegions(
    JSON.stringify([{ dev: 'region0', size: 1073741824, align: 16777216, type: 'pmem', namespaces: [{ dev: 'namespace0.0', mode: 'fsdax', map: 'mem', size: 1073741824, blockdev: 'pmem0' }] }]),
  );
  expect(regions).toEqual([{ dev: 'region0', size: 1073741824, namespaces: [{ dev: 'namespace0.0', mode: 'fsdax', map: 'mem', size: 1073741824, blockdev: 'pmem0' }] }]);
  expect(parseNdctlRegions(JSON.stringify({ regions: [{ dev: 'region1', size: 1 }] })).map((r) => r.dev)).toEqual(['region1']);
  expect(parseNdctlRegions('')).toEqual([]);
  const created = parseCreatedNamespace(
    JSON.stringify({ dev: 'namespace0.0', mode: 'devdax', map: 'mem', size: 1071644672, daxregion: { id: 0, size: 1071644672, align: 2097152, devices: [{ chardev: 'dax0.0', size: 1071644672, mode: 'devdax' }] }, align: 2097152 }),
  );
  expect(created).toMatchObject({ mode: 'devdax', chardev: 'dax0.0', size: 1071644672 });
  expect(memmapPmem('console=ttyS0,115200 root=/dev/vda rw memmap=1024M!1024M')).toEqual(['memmap=1024M!1024M']);
  expect(memmapPmem('memmap=2G!4G quiet memmap=64M$0x1000000')).toEqual(['memmap=2G!4G']);
});

test('kexec target: the installed kernel that is not running, or the one asked for', () => {
  const kernels = installedKernels('System.map-6.1.0-55-amd64\nconfig-6.1.0-55-amd64\ninitrd.img-6.1.0-55-amd64\ninitrd.img-6.1.0-56-amd64\nvmlinuz-6.1.0-56-amd64\nvmlinuz-6.1.0-55-amd64\nvmlinuz-6.1.0-57-amd64\n');
  expect(kernels).toEqual([
    { version: '6.1.0-55-amd64', image: '/boot/vmlinuz-6.1.0-55-amd64', initrd: '/boot/initrd.img-6.1.0-55-amd64' },
    { version: '6.1.0-56-amd64', image: '/boot/vmlinuz-6.1.0-56-amd64', initrd: '/boot/initrd.img-6.1.0-56-amd64' },
    { version: '6.1.0-57-amd64', image: '/boot/vmlinuz-6.1.0-57-amd64' },
  ]);
  expect(chooseKexecTarget(kernels, '6.1.0-55-amd64').version).toBe('6.1.0-56-amd64');
  expect(chooseKexecTarget(kernels, '6.1.0-56-amd64').version).toBe('6.1.0-55-amd64');
  expect(chooseKexecTarget(kernels, '6.1.0-55-amd64', '6.1.0-57-amd64').version).toBe('6.1.0-57-amd64');
  expect(() => chooseKexecTarget(kernels, '6.1.0-55-amd64', '6.1.0-99-amd64')).toThrow(/\[lab:config\] kexec target 6\.1\.0-99-amd64 is not installed/);
  expect(() => chooseKexecTarget(kernels.slice(0, 1), '6.1.0-55-amd64')).toThrow(/no installed kernel other than the running 6\.1\.0-55-amd64/);
});
