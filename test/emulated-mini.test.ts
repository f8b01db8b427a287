/**
 * The emulated lab's first hosts, for real: `emu-arm64` (OpenSSH + libvirt) and `emu-mini` (QEMU/TCG,
 * Debian kernel, busybox, dropbear) brought up in a private run directory, reached over SSH
 * with pinned keys, reset through QMP power, a crash detected and repaired, and torn down
 * with nothing of ours left running. The first run builds the image (minutes).
 */

import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { runLocal } from '../drivers/local.js';
import { createPower } from '../drivers/power.js';
import { isOurProcess, stopProcess } from '../drivers/proc.js';
import { sshFingerprint } from '../images/cache.js';
import { type CpioEntry, newcArchive } from '../images/cpio.js';
import { parseLab } from '../targets/config.js';
import { emuMini as emuMiniDef } from '../targets/emulated/emu-mini.js';
import type { VmHostRecord } from '../targets/emulated/hosts.js';
import { emulatedLab, labDown, labHostNames, labStatus, labUp } from '../targets/emulated/lab.js';
import { sshBootId } from '../targets/emulated/probe.js';
import { launchVm, waitForConsole } from '../targets/emulated/qemu-vm.js';
import { readState } from '../targets/emulated/state.js';
import { freePort } from './helpers/free-port.js';
import { takeQemuSlot } from './helpers/qemu-slot.js';

test.describe.configure({ mode: 'serial' });

test('initramfs archive: GNU cpio reads back files, links, device nodes, all owned by root', async () => {
  const entries: CpioEntry[] = [
    { type: 'dir', path: 'etc', mode: 0o755 },
    { type: 'file', path: 'etc/hostname', mode: 0o644, data: Buffer.from('emu-mini\n') },
    { type: 'symlink', path: 'init', target: '/bin/busybox' },
    { type: 'char', path: 'console', mode: 0o600, major: 5, minor: 1 },
  ];
  const { stdout } = await runLocal(['cpio', '-itv', '--quiet'], { input: newcArchive(entries).toString('latin1') });
  const lines = stdout.trim().split('\n');
  expect(lines).toHaveLength(4);
  expect(lines[1]).toMatch(/^-rw-r--r-- +1 root +root +9 .* etc\/hostname$/);
  expect(lines[2]).toMatch(/^lrwxrwxrwx .* init -> \/bin\/busybox$/);
  expect(lines[3]).toMatch(/^crw------- .* 5, +1 .* console$/);
});

test('host-key fingerprints are computed as OpenSSH does', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'labrig-fp-'));
  try {
    await runLocal(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'k')]);
    const line = await readFile(join(dir, 'k.pub'), 'utf8');
    const { stdout } = await runLocal(['ssh-keygen', '-lf', join(dir, 'k.pub')]);
    expect(sshFingerprint(line)).toBe(stdout.split(' ')[1]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test.describe('a private emulated lab', () => {
  let runDir: string;
  let release: (() => Promise<void>) | undefined;
  const pids: number[] = [];

  test.beforeAll(async () => {
    release = await takeQemuSlot('emulated-mini.test');
    runDir = await mkdtemp(join(tmpdir(), 'labrig-lab-test-'));
  });

  test.afterAll(async () => {
    // Whatever happened above, nothing we started stays up.
    await labDown({ runDir }).catch(() => {});
    await rm(runDir, { recursive: true, force: true });
    await release?.();
  });

  const emuMini = () => readState(runDir)!.hosts['emu-mini'] as VmHostRecord;
  const sshTarget = (r: VmHostRecord) => ({
    address: '127.0.0.1',
    port: r.sshPort,
    user: 'root',
    identityFile: r.identityFile,
    knownHosts: r.knownHosts,
  });

  test('bring-up: SSH with pinned keys, login prompt on the console, QMP power on', async () => {
    test.setTimeout(15 * 60_000);
    const ports = { 'emu-arm64': await freePort(), 'emu-mini': await freePort() };
    // the two cheapest hosts; `lab up` alone would bring every host of labHostNames
    const hosts = ['emu-arm64', 'emu-mini'];
    const state = await labUp({ runDir, ports, hosts, access: { 'emu-mini': 'pty' } });
    expect(Object.keys(state.hosts)).toEqual(hosts);
    for (const r of Object.values(state.hosts)) pids.push(r.pid);

    const status = await labStatus({ runDir });
    expect(status.map((s) => `${s.name}:${s.state}`)).toEqual(labHostNames.map((h) => `${h}:${hosts.includes(h) ? 'up' : 'down'}`));

    const lab = parseLab(emulatedLab({ runDir }), 'emulatedLab()');
    const mini = lab.hosts.find((h) => h.name === 'emu-mini')!;
    expect(mini.console).toMatchObject({ kind: 'serial', baud: 115200, login: { user: 'root' } });
    expect(mini.ssh.port).toBe(ports['emu-mini']);
    expect(mini.expect.absent).toContain('kvm');
    // the pinned fingerprint is the one OpenSSH computes from the image's host key
    const pub = join(emuMini().imageDir, 'hostkey.pub');
    expect(mini.ssh.hostKey).toBe((await runLocal(['ssh-keygen', '-lf', pub])).stdout.split(' ')[1]);

    const r = emuMini();
    const boot = await sshBootId(sshTarget(r));
    expect(boot.ok).toBe(true);
    const uname = await runLocal([
      'ssh',
      '-o',
      'BatchMode=yes',
      '-o',
      `UserKnownHostsFile=${r.knownHosts}`,
      '-i',
      r.identityFile,
      '-p',
      String(r.sshPort),
      'root@127.0.0.1',
      'uname -m; for a in sh flock setsid stty kill sleep cat uname dmesg mount ip; do command -v $a >/dev/null || echo missing $a; done',
    ]);
    expect(uname.stdout.trim()).toBe('x86_64');

    expect(await readFile(r.consoleLog, 'utf8')).toMatch(/^emu-mini login: /m);
    expect((await stat(r.ttyLink)).isCharacterDevice()).toBe(true);
    expect(await createPower(mini.power!, undefined, { host: 'emu-mini' }).status()).toBe('on');

    // a second lab up finds everything healthy and reuses it
    const again = await labUp({ runDir, hosts });
    expect(again.hosts['emu-mini']!.pid).toBe(r.pid);
    expect(again.hosts['emu-arm64']!.pid).toBe(state.hosts['emu-arm64']!.pid);
  });

  test('power cycle (system_reset) boots the kernel again with a new boot_id', async () => {
    test.setTimeout(5 * 60_000);
    const r = emuMini();
    const before = await sshBootId(sshTarget(r));
    expect(before.ok).toBe(true);
    const offset = (await stat(r.consoleLog)).size;
    const lab = parseLab(emulatedLab({ runDir }));
    await createPower(lab.hosts.find((h) => h.name === 'emu-mini')!.power!).cycle();

    const deadline = Date.now() + 120_000;
    let after = '';
    while (Date.now() < deadline) {
      after = (await readFile(r.consoleLog)).subarray(offset).toString();
      if (/^emu-mini login: /m.test(after)) break;
      await new Promise((res) => setTimeout(res, 500));
    }
    expect(after).toMatch(/Linux version 6\.1\.0-\d+-amd64/);
    expect(after).toMatch(/^emu-mini login: /m);
    let now = await sshBootId(sshTarget(r));
    while (!now.ok && Date.now() < deadline) now = await sshBootId(sshTarget(r));
    expect(now.ok && before.ok && now.bootId !== before.bootId).toBe(true);
  });

  test('power off (quit) and on again through the configured start command', async () => {
    test.setTimeout(5 * 60_000);
    const before = emuMini();
    const lab = parseLab(emulatedLab({ runDir }));
    const power = createPower(lab.hosts.find((h) => h.name === 'emu-mini')!.power!, undefined, { host: 'emu-mini' });
    await power.off();
    expect(await power.status()).toBe('off');
    // QEMU answers `quit` and then exits: give the process a moment to be gone.
    await expect.poll(() => isOurProcess(before.pid, before.qmpSocket), { timeout: 15_000 }).toBe(false);
    // the VM is still part of the lab: its power controller can bring it back
    expect(parseLab(emulatedLab({ runDir })).hosts.map((h) => h.name)).toContain('emu-mini');

    await power.on(); // runs `lab up emu-mini`, which boots it to login: and SSH
    const after = emuMini();
    pids.push(after.pid);
    expect(after.pid).not.toBe(before.pid);
    expect(await power.status()).toBe('on');
    expect((await sshBootId(sshTarget(after))).ok).toBe(true);
    expect((await stat(after.ttyLink)).isCharacterDevice()).toBe(true);
  });

  test('a crashed VM is detected and restarted, not reused', async () => {
    test.setTimeout(5 * 60_000);
    const crashed = emuMini();
    process.kill(crashed.pid, 'SIGKILL');
    const deadline = Date.now() + 10_000;
    while (isOurProcess(crashed.pid, crashed.qmpSocket) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
    const broken = (await labStatus({ runDir })).find((s) => s.name === 'emu-mini')!;
    expect(broken.state).toBe('broken');
    expect(broken.detail).toContain(`process ${crashed.pid} is gone`);

    await labUp({ runDir, hosts: ['emu-mini'] });
    const restarted = emuMini();
    pids.push(restarted.pid);
    expect(restarted.pid).not.toBe(crashed.pid);
    expect(restarted.sshPort).toBe(crashed.sshPort);
    expect((await sshBootId(sshTarget(restarted))).ok).toBe(true);
  });

  test('teardown leaves no process of ours', async () => {
    const stopped = await labDown({ runDir });
    expect(stopped.map((s) => s.name).sort()).toEqual(['emu-arm64', 'emu-mini']);
    for (const pid of pids) expect(isOurProcess(pid), `pid ${pid}`).toBe(false);
    expect(readState(runDir)).toBeUndefined();
    expect(() => emulatedLab({ runDir })).toThrow(/\[lab:lab-setup\] the emulated lab is not up/);
    expect((await labStatus({ runDir })).every((s) => s.state === 'down')).toBe(true);
  });

  test('bring-up failures say what failed and where the evidence is', async () => {
    test.setTimeout(2 * 60_000);
    const image = await emuMiniDef.image(() => {});
    const bad = await launchVm({ ...emuMiniDef.vm(image, { sshPort: await freePort() }), machine: 'no-such-machine' }, runDir).catch(
      (e: Error) => e,
    );
    expect(String(bad)).toMatch(
      /\[lab:lab-setup\] host emu-mini: QEMU of emu-mini: exited during start-up[\s\S]*full log: .*emu-mini-qemu\.log[\s\S]*no-such-machine/,
    );

    const vm = await launchVm(emuMiniDef.vm(image, { sshPort: await freePort() }), runDir);
    try {
      const late = await waitForConsole(vm, /never printed/, 'a marker', 10_000).catch((e: Error) => e);
      expect(String(late)).toMatch(
        /\[lab:lab-timeout\] host emu-mini: no a marker on the console within 10000 ms\n {2}full log: .*emu-mini-console\.log\n {2}last lines:\n( {4}\| .*\n)* {4}\| \[ *\d+\.\d+\] /,
      );
    } finally {
      await stopProcess(vm.pid, vm.paths.qmpSocket);
    }
    expect(isOurProcess(vm.pid)).toBe(false);
  });
});
