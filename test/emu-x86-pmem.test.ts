/**
 * emu-x86-pmem for real, in a private run directory: brought up to SSH (pinned key), console
 * and QMP power; a power-controller reboot seen by Host.waitForReturn() as a new boot_id; a
 * kexec into the other installed Debian kernel that changes `uname -r` while data written to
 * pmem survives it; a kexec that never comes back, recovered by a power cycle with the
 * console tail as evidence; and a teardown that leaves nothing of ours running. The first
 * run builds the image (minutes).
 */

import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { runLocal } from '../drivers/local.js';
import { isOurProcess } from '../drivers/proc.js';
import type { Recorder } from '../drivers/recorder.js';
import { loaderCode, readVmlinux, stagedPvhKernel } from '../images/pmem-guest-kernel.js';
import { PMEM_GUEST_KERNEL } from '../images/pmem-image.js';
import { parseLab } from '../targets/config.js';
import { EMU_X86_PMEM_CANDIDATE_BIN, EMU_X86_PMEM_KERNELS } from '../targets/emulated/emu-x86-pmem.js';
import type { VmHostRecord } from '../targets/emulated/hosts.js';
import { emulatedLab, labDown, labStatus, labUp } from '../targets/emulated/lab.js';
import { readState } from '../targets/emulated/state.js';
import { Host } from '../targets/host.js';
import { kexecInto } from '../targets/kexec.js';
import { freePort } from './helpers/free-port.js';
import { takeQemuSlot } from './helpers/qemu-slot.js';

test.describe.configure({ mode: 'serial' });

/** Keeps what a step attaches, so a test can check the evidence a failure left. */
function keepingRecorder(): Recorder & { attached: Map<string, string> } {
  const attached = new Map<string, string>();
  return {
    attached,
    step: (_t, _p, body) => body(),
    attach: async (name, content) => void attached.set(name, content.toString()),
    log: () => {},
  };
}

/** A minimal ELF64 x86-64 "vmlinux": two PT_LOADs (one with .bss) and the Xen PVH note. */
function fakeVmlinux(): Buffer {
  const elf = Buffer.alloc(0x3000);
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]).copy(elf);
  elf.writeUInt16LE(2, 16);
  elf.writeUInt16LE(62, 18);
  elf.writeBigUInt64LE(64n, 32);
  elf.writeUInt16LE(56, 54);
  elf.writeUInt16LE(3, 56);
  const ph = (i: number, type: number, offset: number, paddr: number, filesz: number, memsz: number, align: number) => {
    const at = 64 + i * 56;
    elf.writeUInt32LE(type, at);
    elf.writeBigUInt64LE(BigInt(offset), at + 8);
    elf.writeBigUInt64LE(BigInt(paddr), at + 24);
    elf.writeBigUInt64LE(BigInt(filesz), at + 32);
    elf.writeBigUInt64LE(BigInt(memsz), at + 40);
    elf.writeBigUInt64LE(BigInt(align), at + 48);
  };
  ph(0, 1, 0x1000, 0x1000000, 0x10, 0x10, 0x1000);
  ph(1, 1, 0x2000, 0x1002000, 0x8, 0x1000, 0x1000);
  ph(2, 4, 0x400, 0, 24, 24, 4);
  elf.fill(0xaa, 0x1000, 0x1010);
  elf.fill(0xbb, 0x2000, 0x2008);
  elf.writeUInt32LE(4, 0x400);
  elf.writeUInt32LE(8, 0x404);
  elf.writeUInt32LE(18, 0x408);
  elf.write('Xen\0', 0x40c, 'latin1');
  elf.writeBigUInt64LE(0x1000850n, 0x410);
  return elf;
}

test('staged PVH guest kernel: image flattened above the kernel, loader copies it back and jumps to the PVH entry', async () => {
  const v = fakeVmlinux();
  expect(readVmlinux(v).pvhEntry).toBe(0x1000850);
  const staging = 128 * 1024 * 1024;
  const { elf, reservedBytes } = stagedPvhKernel(v, staging);
  const staged = readVmlinux(elf);
  // QEMU enters the loader (the note), which lies in the one PT_LOAD at the staging address
  expect(staged.pvhEntry).toBe(staging);
  expect(staged.segments).toEqual([{ offset: 0x1000, paddr: staging, filesz: reservedBytes, memsz: reservedBytes }]);
  const image = elf.subarray(0x2000);
  expect(image).toHaveLength(0x3000); // 0x1000000 .. 0x1003000, .bss included as zeros
  expect(image.subarray(0, 0x10).every((b) => b === 0xaa)).toBe(true);
  expect(image.subarray(0x2000, 0x2008).every((b) => b === 0xbb)).toBe(true);
  expect(image.subarray(0x2008).every((b) => b === 0)).toBe(true);
  expect(elf.subarray(0x1000, 0x1019)).toEqual(loaderCode(staging + 0x1000, 0x1000000, 0x3000, 0x1000850));
  expect(() => stagedPvhKernel(v, 0x1001000)).toThrow(/overlaps the kernel image/);
  expect(() => readVmlinux(Buffer.concat([v.subarray(0, 0x400), Buffer.alloc(0x2c00)]))).toThrow();
});

test('the loader is the intended 32-bit code (objdump reads it back)', async () => {
  const objdump = await runLocal(['sh', '-c', 'command -v objdump'], { check: false });
  test.skip(objdump.code !== 0, 'objdump (binutils) is not installed on this runner');
  const dir = await mkdtemp(join(tmpdir(), 'labrig-loader-'));
  try {
    const code = loaderCode(0x8001000, 0x1000000, 0x3a00000, 0x1000850);
    await writeFile(join(dir, 'loader.bin'), code);
    const { stdout } = await runLocal(['objdump', '-D', '-b', 'binary', '-m', 'i386', join(dir, 'loader.bin')]);
    const lines = stdout
      .split('\n')
      .filter((l) => /^\s+[0-9a-f]+:\t/.test(l))
      .map((l) => l.split('\t').at(-1)!.trim().replace(/\s+/g, ' '));
    expect(lines).toEqual([
      'mov $0x8001000,%esi',
      'mov $0x1000000,%edi',
      'mov $0xe80000,%ecx',
      'cld',
      'rep movsl %ds:(%esi),%es:(%edi)',
      'mov $0x1000850,%eax',
      'jmp *%eax',
    ]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test.describe('emu-x86-pmem in a private lab', () => {
  let runDir: string;
  let release: (() => Promise<void>) | undefined;
  let host: Host | undefined;
  const pids: number[] = [];
  const record = () => readState(runDir)!.hosts['emu-x86-pmem'] as VmHostRecord;

  test.beforeAll(async () => {
    test.setTimeout(45 * 60_000);
    release = await takeQemuSlot('emu-x86-pmem.test');
    runDir = await mkdtemp(join(tmpdir(), 'labrig-pmem-test-'));
  });

  test.afterAll(async () => {
    await host?.close().catch(() => {});
    await labDown({ runDir }).catch(() => {});
    await rm(runDir, { recursive: true, force: true });
    await release?.();
  });

  test('bring-up: SSH with the pinned key, console, QMP power, pmem and both kernels', async () => {
    test.setTimeout(20 * 60_000);
    const port = await freePort();
    const t0 = Date.now();
    const state = await labUp({ runDir, hosts: ['emu-x86-pmem'], ports: { 'emu-x86-pmem': port } });
    test.info().annotations.push({ type: 'bring-up', description: `${Date.now() - t0} ms (image build included on a cold cache)` });
    pids.push(state.hosts['emu-x86-pmem']!.pid);
    expect((await labStatus({ runDir })).find((s) => s.name === 'emu-x86-pmem')?.state).toBe('up');

    const config = parseLab(emulatedLab({ runDir })).hosts.find((h) => h.name === 'emu-x86-pmem')!;
    expect(config.role).toEqual(['x86-pmem']);
    expect(config.ssh.port).toBe(port);
    expect(config.suites.snapshotKexec?.guest.kernel).toBe(PMEM_GUEST_KERNEL);
    host = new Host(config, { logDir: join(runDir, 'logs') });
    await host.console();
    expect(await host.power!.status()).toBe('on');
    expect(await readFile(record().consoleLog, 'utf8')).toMatch(/^emu-x86-pmem login: /m);
    expect((await stat(record().ttyLink)).isCharacterDevice()).toBe(true);

    const r = await host.run(
      `uname -r; cat /proc/cmdline; ls /boot; ndctl list -R; ls /dev/pmem0; for t in kexec ndctl daxio mkfs.ext4 qemu-system-x86_64 qemu-img; do command -v $t; done; ls ${PMEM_GUEST_KERNEL}`,
      { check: true },
    );
    expect(r.stdout).toContain(EMU_X86_PMEM_KERNELS[0]);
    expect(r.stdout).toMatch(/memmap=1024M!1024M/);
    for (const k of EMU_X86_PMEM_KERNELS) for (const f of [`vmlinuz-${k}`, `initrd.img-${k}`]) expect(r.stdout).toContain(f);
    expect(r.stdout).toMatch(/"size":1073741824/);
    for (const tool of [
      '/sbin/kexec',
      '/usr/bin/ndctl',
      '/usr/bin/daxio',
      '/sbin/mkfs.ext4',
      '/usr/bin/qemu-system-x86_64',
      '/usr/bin/qemu-img',
    ])
      expect(r.stdout).toContain(`${tool}\n`);

    // Seed 003's upgrade: bookworm-backports' QEMU 10.0 in its own prefix, beside Debian 12's 7.2,
    // building the saving QEMU's versioned machine type.
    const candidate = `${EMU_X86_PMEM_CANDIDATE_BIN}/qemu-system-x86_64`;
    const q = await host.run(`qemu-system-x86_64 --version; ${candidate} --version; ${candidate} -machine help`, {
      check: true,
      timeoutMs: 120_000,
    });
    expect(q.stdout).toMatch(/^QEMU emulator version 7\.2\./m);
    expect(q.stdout).toMatch(/^QEMU emulator version 10\.0\./m);
    expect(q.stdout).toMatch(/^pc-q35-7\.2 /m);
  });

  test('a reboot through the power controller is a new boot_id to waitForReturn()', async () => {
    test.setTimeout(5 * 60_000);
    const before = await host!.bootId();
    const back = await host!.reboot('power');
    expect(back.bootId).not.toBe(before);
    expect(back.bootId).toBe(await host!.bootId());
    expect((await host!.run('uname -r', { check: true })).stdout.trim()).toBe(EMU_X86_PMEM_KERNELS[0]);
  });

  test('a kexec into the other installed kernel changes uname -r, and pmem content survives it', async () => {
    test.setTimeout(5 * 60_000);
    // 4 MiB of random data at 100 MiB into the pmem, and its checksum
    const written = await host!.run(
      'dd if=/dev/urandom of=/tmp/p bs=1M count=4 2>/dev/null && dd if=/tmp/p of=/dev/pmem0 bs=1M seek=100 conv=fsync 2>/dev/null && sha256sum < /tmp/p',
      { check: true, timeoutMs: 60_000 },
    );
    const sum = written.stdout.split(/\s+/)[0]!;
    expect(sum).toMatch(/^[0-9a-f]{64}$/);
    const r = await kexecInto(host!, { timeoutMs: 180_000 });
    test.info().annotations.push({ type: 'kexec_ms', description: String(r.kexecMs) });
    expect(r.from).toBe(EMU_X86_PMEM_KERNELS[0]);
    expect(r.to).toBe(EMU_X86_PMEM_KERNELS[1]);
    expect(r.bootIdAfter).not.toBe(r.bootIdBefore);
    expect((await host!.run('uname -r', { check: true })).stdout.trim()).toBe(EMU_X86_PMEM_KERNELS[1]);
    const read = await host!.run('dd if=/dev/pmem0 bs=1M skip=100 count=4 2>/dev/null | sha256sum', { check: true, timeoutMs: 60_000 });
    expect(read.stdout.split(/\s+/)[0]).toBe(sum);
    // and back: the next kexec goes to the other one again
    expect((await kexecInto(host!, { timeoutMs: 180_000 })).to).toBe(EMU_X86_PMEM_KERNELS[0]);
  });

  test('a kexec whose kernel boots and never comes back: console tail kept, power cycle, product failure, host usable', async () => {
    test.setTimeout(6 * 60_000);
    const cmdline = (await host!.read('/proc/cmdline')).trim();
    const rec = keepingRecorder();
    // The new kernel cannot find its root: its initramfs stops at a shell on the console.
    const failed = await kexecInto(host!, {
      commandLine: `${cmdline} root=/dev/labrig-nonexistent`,
      timeoutMs: 60_000,
      recorder: rec,
    }).catch((e: Error) => e);
    // The new kernel printed its banner on the console: the product's failure, not the lab's.
    expect(String(failed)).toMatch(
      /^ProductError: \[product:did-not-boot\] host emu-x86-pmem: no SSH with a new boot_id within 60000 ms; console shows 'Linux version /,
    );
    expect(rec.attached.get('console-tail-emu-x86-pmem.txt')).toMatch(/initramfs: cannot mount \/dev\/labrig-nonexistent/);
    expect(host!.broken).toBeUndefined();
    expect((await host!.run('uname -r', { check: true })).stdout.trim()).toBe(EMU_X86_PMEM_KERNELS[0]);
  });

  test('teardown leaves no process of ours', async () => {
    await host?.close();
    host = undefined;
    const r = record();
    pids.push(r.pid);
    await labDown({ runDir });
    for (const pid of pids) expect(isOurProcess(pid), `pid ${pid}`).toBe(false);
    expect(readState(runDir)).toBeUndefined();
  });
});
