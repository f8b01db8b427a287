/**
 * emu-xen for real: Debian's Xen 4.17 booted by QEMU's multiboot loader under TCG, a Debian
 * dom0 with the xl toolstack, brought up in a private run directory and reached the way a
 * run reaches it — SSH with the pinned key, the serial console (Xen's com1), QMP power —
 * then torn down with nothing of ours left running. The first run builds the image.
 */

import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { runLocal } from '../drivers/local.js';
import { createPower } from '../drivers/power.js';
import { isOurProcess } from '../drivers/proc.js';
import { Xl } from '../drivers/xl.js';
import { parseLab } from '../targets/config.js';
import { EMU_XEN_BOOT, xenCommandline } from '../targets/emulated/emu-xen.js';
import type { VmHostRecord } from '../targets/emulated/hosts.js';
import { emulatedLab, labDown, labStatus, labUp } from '../targets/emulated/lab.js';
import { readState } from '../targets/emulated/state.js';
import { Host } from '../targets/host.js';
import { freePort } from './helpers/free-port.js';
import { takeQemuSlot } from './helpers/qemu-slot.js';

test.describe.configure({ mode: 'serial' });

test.describe('emu-xen in a private emulated lab', () => {
  let runDir: string;
  let release: (() => Promise<void>) | undefined;
  let pid: number | undefined;

  test.beforeAll(async () => {
    // the hook's own timeout: others may hold the QEMU slot for a while
    test.setTimeout(35 * 60_000);
    release = await takeQemuSlot('emu-xen.test');
    runDir = await mkdtemp(join(tmpdir(), 'labrig-xen-test-'));
  });

  test.afterAll(async () => {
    await labDown({ runDir }).catch(() => {});
    await rm(runDir, { recursive: true, force: true });
    await release?.();
  });

  test('bring-up: Xen and dom0 on the serial console, SSH with the pinned key, QMP power on', async () => {
    test.setTimeout(15 * 60_000);
    const t0 = performance.now();
    const state = await labUp({ runDir, hosts: ['emu-xen'], ports: { 'emu-xen': await freePort() } });
    const upS = (performance.now() - t0) / 1000;
    test.info().annotations.push({ type: 'bring-up', description: `${upS.toFixed(1)} s (image cached or built)` });
    const r = state.hosts['emu-xen'] as VmHostRecord;
    pid = r.pid;
    expect((await labStatus({ runDir })).find((s) => s.name === 'emu-xen')?.state).toBe('up');

    // One serial line carries Xen's own lines, dom0's kernel (hvc0 goes out through Xen) and its login.
    const log = (await readFile(r.consoleLog, 'utf8')).replace(/\r/g, '');
    expect(log).toMatch(/^\(XEN\) Xen version 4\.17\.\d+ \(Debian /m);
    expect(log).toContain(`(XEN) Command line: ${xenCommandline(EMU_XEN_BOOT)}\n`);
    expect(log).toMatch(/^\(XEN\) \*\*\* Building a PV Dom0 \*\*\*$/m);
    expect(log).toMatch(/Linux version 6\.1\.0-\d+-amd64/);
    expect(log).toMatch(/^emu-xen login: /m);
    expect(r.argv).toEqual(expect.arrayContaining(['-cpu', 'qemu64', '-accel', 'tcg']));

    const lab = parseLab(emulatedLab({ runDir }), 'emulatedLab()');
    const cfg = lab.hosts.find((h) => h.name === 'emu-xen')!;
    expect(cfg.role).toEqual(['x86-xen']);
    // The console through ser2net (telnet) and SSH on the host's own loopback address, as a lab's console server serves it.
    expect(cfg.console).toMatchObject({ kind: 'tcp', address: '127.0.0.3', port: r.ser2net!.port, telnet: true, login: { user: 'root' } });
    expect(cfg.ssh.address).toBe('127.0.0.3');
    expect(cfg.suites.xen).toMatchObject({ ...EMU_XEN_BOOT, pvGuest: { bridge: 'xenbr0' } });
    expect(cfg.ssh.hostKey).toBe((await runLocal(['ssh-keygen', '-lf', join(r.imageDir, 'hostkey.pub')])).stdout.split(' ')[1]);
    expect((await stat(r.ttyLink)).isCharacterDevice()).toBe(true);
    expect(await createPower(cfg.power!, undefined, { host: 'emu-xen' }).status()).toBe('on');
  });

  test('xl list over SSH shows Domain-0 with ID 0; xenstored and xenconsoled run', async () => {
    test.setTimeout(3 * 60_000);
    const lab = parseLab(emulatedLab({ runDir }));
    const host = new Host(lab.hosts.find((h) => h.name === 'emu-xen')!, { logDir: runDir });
    try {
      const xl = new Xl(host);
      const list = await xl.list();
      expect(list.map((d) => [d.name, d.id])).toEqual([['Domain-0', 0]]);
      expect(list[0]).toMatchObject({ memMiB: 512, vcpus: 1, state: { running: true } });
      const info = await xl.info();
      expect(info.xenCommandline).toBe(xenCommandline(EMU_XEN_BOOT));
      expect(info.xenVersion).toMatch(/^4\.17\./);
      const comms = (await host.run('cat /proc/[0-9]*/comm', { check: true })).stdout.split('\n');
      expect(comms).toEqual(expect.arrayContaining(['xenstored', 'xenconsoled', 'dropbear']));
      expect((await host.run('mount', { check: true })).stdout).toMatch(/^xenfs on \/proc\/xen type xenfs/m);
      expect((await host.run('ls -d /var/run/xen /var/lib/xen /var/log/xen /var/lock /sys/class/net/xenbr0', { check: true })).code).toBe(
        0,
      );
    } finally {
      await host.close();
    }
  });

  test('teardown leaves no process of ours', async () => {
    await labDown({ runDir });
    expect(isOurProcess(pid)).toBe(false);
    expect(readState(runDir)).toBeUndefined();
    expect((await labStatus({ runDir })).every((s) => s.state === 'down')).toBe(true);
  });
});
