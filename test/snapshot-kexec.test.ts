/**
 * The snapshot → kexec → restore suite's pure logic: the guest's memory workload and marker,
 * the continuation verdict, the nested QEMU argv, the guest initramfs, the QEMU checks
 * (machine pinning, pmem=on refused), host-preparation parsers and the choice of the kexec
 * target. The workload is the real program, assembled by binutils and run on the runner: a
 * word changed through /proc/<pid>/mem is what it must catch.
 */

import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { execa } from 'execa';
import { runLocal } from '../drivers/local.js';
import { guestInit, guestInitramfs, isStaticElf } from '../images/snapshot-guest.js';
import { type GuestSpec, guestAppend, guestArgv } from '../suites/snapshot-kexec/guest.js';
import { memmapPmem, parseCreatedNamespace, parseNdctlRegions } from '../suites/snapshot-kexec/host-prep.js';
import {
  describePass,
  expectedKey,
  type Marker,
  newSeed,
  parseMarker,
  type Tick,
  type VerifyPass,
  verifyContinuation,
  vmStateBytes,
} from '../suites/snapshot-kexec/marker.js';
import { buildMemProgram, patternKey, patternWord } from '../suites/snapshot-kexec/mem-program.js';
import { classifyPmemProbe, parseMachineHelp, pinMachine, pmemOnRefused, type QemuFacts } from '../suites/snapshot-kexec/qemu-check.js';
import { EMU_X86_PMEM_CANDIDATE_BIN, EMU_X86_PMEM_SUITE, RESTORE_QEMU_ENV, restoreQemuOf } from '../targets/emulated/emu-x86-pmem.js';
import { chooseKexecTarget, installedKernels } from '../targets/kexec.js';
import { suiteParamsSchema } from '../targets/schema.js';

const BOOT = '007f89f9-2a4b-4141-b2d6-fa543b403670';
const tick = (n: number, bootId = BOOT): Tick => ({ n, bootId, end: n * 100 });
const pass = (n: number, fromTick: number, toTick: number, badWords = 0): VerifyPass => ({
  pass: n,
  fromTick,
  toTick,
  ok: badWords === 0,
  badWords,
  firstBadOffset: badWords ? 4096 : undefined,
  end: toTick * 100 + 50,
});
const KEY = expectedKey('abc123');
const marker = (ticks: Tick[], passes: VerifyPass[] = [], pattern = true): Marker => ({
  ticks,
  passes,
  ...(pattern ? { pattern: { mib: 512, key: KEY, end: 10 } } : {}),
});
const expected = { key: KEY, mib: 512 };

test('the memory workload, run on the runner: pattern from the seed, ticks, full passes; a changed word is caught at its offset', async () => {
  test.setTimeout(60_000);
  const program = await buildMemProgram();
  expect(isStaticElf(program)).toBe(true);
  const dir = await mkdtemp(join(tmpdir(), 'labrig-mem-test-'));
  await writeFile(join(dir, 'labrig-mem'), program, { mode: 0o755 });
  const seed = newSeed();
  const proc = execa(`${dir}/labrig-mem`, [seed, '8', '100'], { reject: false, buffer: false });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => void (out += d.toString('latin1')));
  const until = async (what: string, ok: (m: Marker) => boolean) => {
    for (let i = 0; i < 200 && !ok(parseMarker(Buffer.from(out, 'latin1'))); i++) await new Promise((r) => setTimeout(r, 100));
    const m = parseMarker(Buffer.from(out, 'latin1'));
    expect(ok(m), `${what}; output:\n${out.slice(-2000)}`).toBe(true);
    return m;
  };
  try {
    const first = await until('pattern, two ticks and a pass', (m) => m.ticks.length >= 2 && m.passes.length >= 1);
    expect(first.pattern).toMatchObject({ mib: 8, key: patternKey(seed).toString() });
    expect(first.ticks.map((t) => t.n).slice(0, 2)).toEqual([1, 2]);
    expect(first.ticks[0]!.bootId).toBe((await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim());
    expect(first.passes.every((p) => p.ok && p.badWords === 0 && p.firstBadOffset === undefined)).toBe(true);
    // The region's words are the pattern the suite computes: read two of them back.
    const address = Number(/labrig-pattern 8 \d+ (\d+)/.exec(out)![1]);
    const mem = await open(`/proc/${proc.pid}/mem`, 'r+');
    try {
      const word = Buffer.alloc(8);
      await mem.read(word, 0, 8, address + 8 * 1000);
      expect(word.readBigUInt64LE()).toBe(patternWord(seed, 1000));
      // One word changed behind the program's back, as a lost page would be.
      await mem.write(Buffer.from('labrig!!'), 0, 8, address + 3 * 4096);
    } finally {
      await mem.close();
    }
    const afterTick = parseMarker(Buffer.from(out, 'latin1')).ticks.at(-1)!.n;
    const bad = await until('a pass begun after the change that finds it', (m) => m.passes.some((p) => p.fromTick > afterTick && !p.ok));
    const found = bad.passes.find((p) => p.fromTick > afterTick && !p.ok)!;
    expect(found).toMatchObject({ ok: false, badWords: 1, firstBadOffset: 3 * 4096 });
    expect(describePass(found, 8)).toMatch(/1 of 1048576 words differ from the pattern, the first at byte offset 12288/);
  } finally {
    proc.kill('SIGKILL');
    await proc;
    await rm(dir, { recursive: true, force: true });
  }
});

test('the memory workload without its arguments says how to call it and exits 1', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'labrig-mem-test-'));
  try {
    await writeFile(join(dir, 'labrig-mem'), await buildMemProgram(), { mode: 0o755 });
    const r = await runLocal([`${dir}/labrig-mem`, 'seed'], { check: false });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('usage: labrig-mem <seed> <MiB> <busy ms>\n');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('marker lines are parsed with their byte offsets; a line cut at the end does not count yet', () => {
  const log = Buffer.from(
    `[ 71.2] Run /init as init process\nlabrig-guest ready: seed x\nlabrig-pattern 512 ${KEY} 140000000000\nlabrig-tick 1 ${BOOT}\r\n` +
      `labrig-verify 0 1 9 ok 0 -\nlabrig-verify 1 9 17 mismatch 3 8192\nlabrig-tick 2 ${BOOT}\nlabrig-tick 3 ${BOOT.slice(0, 10)}`,
    'latin1',
  );
  const m = parseMarker(log);
  expect(m.pattern).toMatchObject({ mib: 512, key: KEY });
  expect(m.ticks.map((t) => t.n)).toEqual([1, 2]);
  expect(m.passes).toEqual([
    expect.objectContaining({ pass: 0, fromTick: 1, toTick: 9, ok: true, badWords: 0, firstBadOffset: undefined }),
    expect.objectContaining({ pass: 1, fromTick: 9, toTick: 17, ok: false, badWords: 3, firstBadOffset: 8192 }),
  ]);
  expect(log.subarray(0, m.ticks[1]!.end).toString().endsWith(`${BOOT}\n`)).toBe(true);
  // the rest of line 3 arrives after the restore: it counts as the first tick after it
  const later = Buffer.concat([log, Buffer.from(`${BOOT.slice(10)}\n`)]);
  expect(parseMarker(later, log.length).ticks.map((t) => t.n)).toEqual([3]);
  expect(parseMarker(later, log.length).pattern).toBeUndefined();
});

test('continuation: the counter goes on, same boot_id, and a full pass begun after the restore finds the pattern intact', () => {
  const ok = verifyContinuation({
    before: marker([tick(1), tick(2), tick(3)], [pass(0, 1, 2)]),
    after: marker([tick(4), tick(5), tick(6), tick(7)], [pass(1, 3, 5), pass(2, 5, 7)], false),
    expected,
    minAfter: 3,
  });
  expect(ok).toMatchObject({ ok: true, problems: [] });
  expect(ok.lastBefore?.n).toBe(3);
  expect(ok.firstAfter?.n).toBe(4);
  // pass 1 began during tick 3, before the stop: only pass 2 verified the region after the restore
  expect(ok.passAfter?.pass).toBe(2);
});

test('continuation: each way a restore can go wrong is named', () => {
  const before = marker([tick(7), tick(8)]);
  const other = 'aaaaaaaa-2a4b-4141-b2d6-fa543b403670';
  const rebooted = verifyContinuation({ before, after: marker([tick(1, other), tick(2, other)], [pass(0, 1, 2)]), expected, minAfter: 2 });
  expect(rebooted.ok).toBe(false);
  expect(rebooted.problems.join('\n')).toMatch(
    /started again at 1 \(it was 8 before the stop\)[\s\S]*boot_id changed[\s\S]*wrote its pattern again/,
  );

  const jumped = verifyContinuation({ before, after: marker([tick(10), tick(11)], [pass(3, 10, 11)], false), expected, minAfter: 2 });
  expect(jumped.problems).toEqual(['the first tick after the restore is 10, expected 9 (last before the stop: 8)']);

  const corrupt = verifyContinuation({ before, after: marker([tick(9), tick(10)], [pass(4, 9, 10, 2)], false), expected, minAfter: 2 });
  expect(corrupt.problems).toEqual([
    'pass 4 (ticks 9–10) over 512 MiB: 2 of 67108864 words differ from the pattern, the first at byte offset 4096',
  ]);
  expect(corrupt.passAfter?.ok).toBe(false);

  const unverified = verifyContinuation({ before, after: marker([tick(9), tick(10)], [pass(1, 8, 10)], false), expected, minAfter: 2 });
  expect(unverified.problems).toEqual([
    'no full pass over the 512 MiB pattern began after the restore (after tick 8): the pattern was not verified',
  ]);

  const silent = verifyContinuation({ before, after: marker([], [], false), expected, minAfter: 3 });
  expect(silent.problems[0]).toBe('0 tick(s) after the restore, wanted 3: the guest did not run on');

  const stalled = verifyContinuation({ before, after: marker([tick(9), tick(9)], [pass(1, 9, 9)], false), expected, minAfter: 2 });
  expect(stalled.problems).toEqual(['the counter went from 9 to 9 after the restore']);

  const wrongPattern = verifyContinuation({
    before: { ...before, pattern: { mib: 64, key: '1', end: 1 } },
    after: marker([tick(9)], [pass(1, 9, 9)], false),
    expected,
    minAfter: 1,
  });
  expect(wrongPattern.problems).toEqual([`the guest wrote a 64 MiB pattern with key 1, expected 512 MiB with key ${KEY}`]);
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
  machine: 'pc-q35-7.2',
  accel: 'tcg',
  memoryMiB: 768,
  memPath: '/dev/dax0.0',
  pmemOn: true,
  align: '2M',
  kernel: '/usr/share/labrig/guest/vmlinux',
  initrd: '/var/lib/labrig-snapshot-kexec/guest-initrd.cpio',
  append: guestAppend('console=ttyS0', 'abc123', 512, 500),
  disk: '/var/lib/labrig-snapshot-kexec/devdax.qcow2',
  qmpSocket: '/var/lib/labrig-snapshot-kexec/devdax.qmp',
  serialLog: '/var/lib/labrig-snapshot-kexec/devdax-serial.log',
  pidFile: '/var/lib/labrig-snapshot-kexec/devdax.pid',
};

test('guest argv: q35 pinned, all RAM on a shared file backend on pmem, a numa node on it, qcow2, QMP, paused', () => {
  const argv = guestArgv(spec);
  const opt = (name: string) => argv[argv.indexOf(name) + 1];
  expect(opt('-machine')).toBe('pc-q35-7.2');
  expect(opt('-object')).toBe('memory-backend-file,id=pmem0,size=768M,mem-path=/dev/dax0.0,share=on,pmem=on,align=2M');
  expect(opt('-numa')).toBe('node,memdev=pmem0');
  expect(opt('-m')).toBe('768M');
  expect(opt('-drive')).toBe('if=none,id=disk0,format=qcow2,file=/var/lib/labrig-snapshot-kexec/devdax.qcow2');
  expect(opt('-qmp')).toBe('unix:/var/lib/labrig-snapshot-kexec/devdax.qmp,server=on,wait=off');
  expect(opt('-append')).toBe('console=ttyS0 panic=1 labrig.seed=abc123 labrig.pattern_mib=512 labrig.verify_ms=500');
  expect(argv).toEqual(expect.arrayContaining(['-S', '-daemonize', '-no-reboot']));
  // the restore must use the very same argv: a pure function of the spec
  expect(guestArgv(spec)).toEqual(argv);
  // the restoring QEMU gets the same argv, only argv[0] differs
  expect(guestArgv({ ...spec, qemu: '/opt/qemu-10.0/usr/bin/qemu-system-x86_64' }).slice(1)).toEqual(argv.slice(1));
  // pmemOn: false (asked for in the config), and on an fsdax file, the backend says so
  const fsdax = guestArgv({ ...spec, memPath: '/mnt/labrig-pmem/labrig-guest-ram', pmemOn: false, align: undefined });
  expect(fsdax[fsdax.indexOf('-object') + 1]).toBe(
    'memory-backend-file,id=pmem0,size=768M,mem-path=/mnt/labrig-pmem/labrig-guest-ram,share=on',
  );
  expect(() => guestArgv({ ...spec, memPath: '/mnt/a,b' })).toThrow(/\[lab:config\] mem-path "\/mnt\/a,b" contains a comma/);
});

test('guest initramfs: GNU cpio reads back busybox, applet links, the workload, /init and /dev/console', async () => {
  const busybox = await readFile('/bin/busybox');
  expect(isStaticElf(busybox)).toBe(true);
  expect(isStaticElf(await readFile('/bin/ls'))).toBe(false);
  expect(isStaticElf(Buffer.from('#!/bin/sh\n'))).toBe(false);
  const archive = guestInitramfs(busybox, await buildMemProgram());
  const { stdout } = await runLocal(['cpio', '-itv', '--quiet'], { input: archive.toString('latin1') });
  expect(stdout).toMatch(/^-rwxr-xr-x .* root +root +\d+ .* bin\/busybox$/m);
  expect(stdout).toMatch(/^lrwxrwxrwx .* bin\/mount -> busybox$/m);
  expect(stdout).toMatch(/^-rwxr-xr-x .* bin\/labrig-mem$/m);
  expect(stdout).toMatch(/^-rwxr-xr-x .* init$/m);
  expect(stdout).toMatch(/^crw------- .* 5, +1 .* dev\/console$/m);
  // the init script is valid sh and reads its parameters from the kernel command line
  await runLocal(['sh', '-n', '-c', guestInit()]);
  expect(guestInit()).toContain('labrig.pattern_mib=*');
  expect(guestInit()).toMatch(/exec \/bin\/labrig-mem "\$seed" "\$mib" "\$ms"/);
});

test('host preparation parsers: ndctl output as this host printed it, memmap= reservations', () => {
  const regions = parseNdctlRegions(
    JSON.stringify([
      {
        dev: 'region0',
        size: 1073741824,
        align: 16777216,
        type: 'pmem',
        namespaces: [{ dev: 'namespace0.0', mode: 'fsdax', map: 'mem', size: 1073741824, blockdev: 'pmem0' }],
      },
    ]),
  );
  expect(regions).toEqual([
    {
      dev: 'region0',
      size: 1073741824,
      namespaces: [{ dev: 'namespace0.0', mode: 'fsdax', map: 'mem', size: 1073741824, blockdev: 'pmem0' }],
    },
  ]);
  expect(parseNdctlRegions(JSON.stringify({ regions: [{ dev: 'region1', size: 1 }] })).map((r) => r.dev)).toEqual(['region1']);
  expect(parseNdctlRegions('')).toEqual([]);
  const created = parseCreatedNamespace(
    JSON.stringify({
      dev: 'namespace0.0',
      mode: 'devdax',
      map: 'mem',
      size: 1071644672,
      daxregion: { id: 0, size: 1071644672, align: 2097152, devices: [{ chardev: 'dax0.0', size: 1071644672, mode: 'devdax' }] },
      align: 2097152,
    }),
  );
  expect(created).toMatchObject({ mode: 'devdax', chardev: 'dax0.0', size: 1071644672 });
  expect(memmapPmem('console=ttyS0,115200 root=/dev/vda rw memmap=1024M!1024M')).toEqual(['memmap=1024M!1024M']);
  expect(memmapPmem('memmap=2G!4G quiet memmap=64M$0x1000000')).toEqual(['memmap=2G!4G']);
});

test('kexec target: the installed kernel that is not running, or the one asked for', () => {
  const kernels = installedKernels(
    'System.map-6.1.0-55-amd64\nconfig-6.1.0-55-amd64\ninitrd.img-6.1.0-55-amd64\ninitrd.img-6.1.0-56-amd64\nvmlinuz-6.1.0-56-amd64\nvmlinuz-6.1.0-55-amd64\nvmlinuz-6.1.0-57-amd64\n',
  );
  expect(kernels).toEqual([
    { version: '6.1.0-55-amd64', image: '/boot/vmlinuz-6.1.0-55-amd64', initrd: '/boot/initrd.img-6.1.0-55-amd64' },
    { version: '6.1.0-56-amd64', image: '/boot/vmlinuz-6.1.0-56-amd64', initrd: '/boot/initrd.img-6.1.0-56-amd64' },
    { version: '6.1.0-57-amd64', image: '/boot/vmlinuz-6.1.0-57-amd64' },
  ]);
  expect(chooseKexecTarget(kernels, '6.1.0-55-amd64').version).toBe('6.1.0-56-amd64');
  expect(chooseKexecTarget(kernels, '6.1.0-56-amd64').version).toBe('6.1.0-55-amd64');
  expect(chooseKexecTarget(kernels, '6.1.0-55-amd64', '6.1.0-57-amd64').version).toBe('6.1.0-57-amd64');
  expect(() => chooseKexecTarget(kernels, '6.1.0-55-amd64', '6.1.0-99-amd64')).toThrow(
    /\[lab:config\] kexec target 6\.1\.0-99-amd64 is not installed/,
  );
  expect(() => chooseKexecTarget(kernels.slice(0, 1), '6.1.0-55-amd64')).toThrow(
    /no installed kernel other than the running 6\.1\.0-55-amd64/,
  );
});

const facts = (o: Partial<QemuFacts>): QemuFacts => ({
  binary: '/usr/bin/qemu-system-x86_64',
  version: 'QEMU emulator version 7.2.22',
  machines: new Map(),
  pmem: { ok: true },
  ...o,
});

test("machine type: the runner's own QEMU lists q35 as an alias, pinned to its versioned type", async () => {
  const help = (await runLocal(['qemu-system-x86_64', '-machine', 'help'])).stdout;
  const machines = parseMachineHelp(help);
  const pinned = pinMachine(machines, 'q35', 'qemu-system-x86_64');
  expect(pinned).toMatch(/^pc-q35-\d+\.\d+$/);
  expect(machines.has(pinned)).toBe(true);
  const version = (await runLocal(['qemu-system-x86_64', '--version'])).stdout;
  expect(version).toContain(`version ${pinned.slice('pc-q35-'.length)}`);
  // a versioned type stays as it is; an unknown one is the lab's mistake, named
  expect(pinMachine(machines, 'pc-q35-7.1', 'qemu-system-x86_64')).toBe('pc-q35-7.1');
  expect(() => pinMachine(machines, 'q36', 'qemu-system-x86_64')).toThrow(
    /\[lab:config\] suites\.snapshotKexec\.machine "q36" is not a machine type of qemu-system-x86_64/,
  );
});

test("pmem=on: taken by the runner's Debian QEMU (built with libpmem); refused, it fails the run with the right class", async () => {
  // The real probe the suite runs on the host, here on the runner's QEMU (-machine none: no guest).
  const dir = await mkdtemp(join(tmpdir(), 'labrig-pmem-probe-'));
  try {
    const r = await runLocal(
      [
        'sh',
        '-c',
        `printf '%s\\n' '{"execute":"qmp_capabilities"}' '{"execute":"quit"}' | qemu-system-x86_64 -machine none -nodefaults -display none -object memory-backend-file,id=probe,size=2M,mem-path=${dir}/p,share=on,pmem=on -qmp stdio 2>&1`,
      ],
      { check: false, timeoutMs: 60_000 },
    );
    expect(classifyPmemProbe(r.code ?? -1, r.stdout)).toEqual({ ok: true });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  // QEMU's own refusals (backends/hostmem-file.c: without CONFIG_LIBPMEM; newer builds drop the property)
  const lack =
    "qemu-system-x86_64: -object memory-backend-file,id=probe,size=2M,mem-path=/x,share=on,pmem=on: Lack of libpmem support while setting the 'pmem=on' of memory-backend-file. We can't ensure data persistence.";
  expect(classifyPmemProbe(1, lack)).toEqual({ ok: false, libpmemMissing: true, reason: lack });
  expect(
    classifyPmemProbe(1, "qemu-system-x86_64: -object memory-backend-file,...: Property 'memory-backend-file.pmem' not found"),
  ).toMatchObject({ ok: false, libpmemMissing: true });
  expect(
    classifyPmemProbe(1, "qemu-system-x86_64: -object memory-backend-file,...: can't open backing store /x: Permission denied"),
  ).toMatchObject({ ok: false, libpmemMissing: false });

  const noLibpmem = facts({ pmem: classifyPmemProbe(1, lack) });
  const config = pmemOnRefused({ host: 'h', role: 'saving', qemu: noLibpmem, underValidation: false });
  expect(config.message).toMatch(
    /^\[lab:config\] host h: suites\.snapshotKexec\.pmemOn is true but the saving QEMU \/usr\/bin\/qemu-system-x86_64 \(QEMU emulator version 7\.2\.22\) refuses pmem=on: it was built without libpmem/,
  );
  expect(config.message).toContain('point suites.snapshotKexec.qemu at a QEMU built with --enable-libpmem, or set pmemOn: false');
  const candidate = pmemOnRefused({ host: 'h', role: 'restoring', qemu: noLibpmem, underValidation: true });
  expect(candidate.message).toMatch(
    /^\[product:mismatch\] host h: the restoring QEMU .* the QEMU under validation was built without libpmem/,
  );
  const other = pmemOnRefused({
    host: 'h',
    role: 'saving',
    qemu: facts({ pmem: classifyPmemProbe(1, "can't open backing store") }),
    underValidation: false,
  });
  expect(other.message).toMatch(/^\[product:command-failed\] .*did not start: can't open backing store/);
});

test('suite parameters: a 512 MiB pattern on q35 with pmem=on by default; a guest too small for its pattern is refused by field', () => {
  const schema = suiteParamsSchema.shape.snapshotKexec.unwrap();
  const d = schema.parse({});
  expect(d).toMatchObject({ machine: 'q35', pmemOn: true, guest: { memoryMiB: 768, patternMiB: 512, verifyMsPerSecond: 500 } });
  expect(d.restoreQemu).toBeUndefined();
  expect(schema.parse({ restoreQemu: '/opt/qemu-10.0/usr/bin' }).restoreQemu).toBe('/opt/qemu-10.0/usr/bin');
  const small = schema.safeParse({ guest: { memoryMiB: 512, patternMiB: 512 } });
  expect(small.success).toBe(false);
  expect(small.error!.issues[0]).toMatchObject({
    path: ['guest', 'memoryMiB'],
    message: expect.stringMatching(/guest\.memoryMiB must be at least guest\.patternMiB \+ 256/),
  });
  expect(schema.safeParse({ machine: 'q35,accel=kvm' }).success).toBe(false);
});

test('the emulated pmem host restores with its candidate QEMU 10.0 (/opt/qemu-10.0/bin), the saving QEMU when LABRIG_EMU_RESTORE_QEMU=same, or the one it names', () => {
  const schema = suiteParamsSchema.shape.snapshotKexec.unwrap();
  expect(RESTORE_QEMU_ENV).toBe('LABRIG_EMU_RESTORE_QEMU');
  expect(EMU_X86_PMEM_CANDIDATE_BIN).toBe('/opt/qemu-10.0/bin');
  expect(restoreQemuOf({})).toEqual({ restoreQemu: '/opt/qemu-10.0/bin' });
  expect(restoreQemuOf({ [RESTORE_QEMU_ENV]: ' ' })).toEqual({ restoreQemu: '/opt/qemu-10.0/bin' });
  expect(restoreQemuOf({ [RESTORE_QEMU_ENV]: 'same' })).toEqual({});
  expect(restoreQemuOf({ [RESTORE_QEMU_ENV]: '/opt/qemu-11/bin' })).toEqual({ restoreQemu: '/opt/qemu-11/bin' });
  const upgraded = schema.parse({ ...EMU_X86_PMEM_SUITE, ...restoreQemuOf({}) });
  expect(upgraded).toMatchObject({ qemu: 'qemu-system-x86_64', restoreQemu: '/opt/qemu-10.0/bin', machine: 'q35' });
});
