/**
 * The xl driver and the Xen suite's pure logic, on outputs recorded from emu-xen (Debian's
 * Xen 4.17.7 under TCG; test/recorded/xen/, captured by booting emu-xen and running xl):
 * the cfg builder is checked against what libxl itself read back (`xl create -n`).
 */

import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { expect, test } from '@playwright/test';
import { Console } from '../drivers/console.js';
import {
  diskSpec,
  parseXlDryRun,
  parseXlInfo,
  parseXlList,
  parseXlListLong,
  randomXenMac,
  vifSpec,
  type XlDomainSpec,
  xlConfig,
  xlFailureReason,
  xlString,
} from '../drivers/xl.js';
import { markerArgument, readyPattern } from '../images/contracts/xen-domu.js';
import {
  commandlineMismatches,
  expectedDom0MiB,
  hvmSupport,
  parseDom0Mem,
  parseXenCommandline,
  parseXenSerialBoot,
  xenSizeMiB,
} from '../suites/xen/boot.js';
import { backendNic, bridgeMembersScript, parseBridgeMembers, processNamesScript } from '../suites/xen/dom0.js';
import { findLeftovers, isClean, leftoversScript, vifLeftovers } from '../suites/xen/leftovers.js';
import { watchForDeath } from '../suites/xen/watch.js';
import { recordedOutput } from './helpers/recorded.js';

const rec = (name: string) => readFileSync(join(import.meta.dirname, 'recorded', 'xen', name), 'utf8');

// The specs the recorded cfgs were written from (by xlConfig, in the capture run).
const pv: XlDomainSpec = {
  type: 'pv',
  name: 'labrig-pv-rec',
  memoryMiB: 128,
  vcpus: 1,
  kernel: '/var/lib/labrig/domu/vmlinuz',
  ramdisk: '/var/lib/labrig/domu/initrd.img',
  extra: 'console=hvc0 labrig.marker=0123456789ab',
  vifs: [{ mac: '00:16:3e:12:34:56', bridge: 'xenbr0' }],
  onReboot: 'destroy',
};
const quoting: XlDomainSpec = {
  type: 'pv',
  name: 'labrig-quoting',
  memoryMiB: 64,
  vcpus: 1,
  kernel: '/var/lib/labrig/domu/vmlinuz',
  extra: 'console=hvc0 say="hello world" back\\slash it\'s\ttab',
};
const hvm: XlDomainSpec = {
  type: 'hvm',
  name: 'labrig-hvm-rec',
  memoryMiB: 256,
  vcpus: 2,
  disks: [
    { target: '/var/lib/labrig/hvm, with comma.img', vdev: 'hda' },
    { target: '/var/lib/labrig/boot.iso', vdev: 'hdc', devtype: 'cdrom', access: 'ro' },
  ],
  vifs: [{ mac: '00:16:3e:0a:0b:0c', bridge: 'xenbr0', model: 'e1000' }],
  serial: 'pty',
  boot: 'c',
};

test.describe('xl cfg from a typed spec', () => {
  test('the builder writes what the recorded run wrote, and libxl read back every value', () => {
    for (const [name, spec] of [
      ['pv', pv],
      ['quoting', quoting],
      ['hvm', hvm],
    ] as const) {
      expect(xlConfig(spec), name).toBe(rec(`${name}.cfg`));
      const parsed = parseXlDryRun(rec(`xl-create-n-${name}.json`));
      expect(parsed.name).toBe(spec.name);
      expect(parsed.type).toBe(spec.type);
      expect(parsed.maxMemKiB).toBe(spec.memoryMiB * 1024);
      expect(parsed.maxVcpus).toBe(spec.vcpus);
      expect(parsed.nics).toEqual((spec.vifs ?? []).map((v) => ({ mac: v.mac, bridge: v.bridge })));
      if (spec.type === 'pv')
        expect({ kernel: parsed.kernel, ramdisk: parsed.ramdisk, cmdline: parsed.cmdline }).toEqual({
          kernel: spec.kernel,
          ramdisk: spec.ramdisk,
          cmdline: spec.extra,
        });
      else expect(parsed.disks).toEqual(spec.disks!.map((d) => ({ target: d.target, vdev: d.vdev })));
    }
  });

  test('quotes, backslashes and tabs survive; what cannot be written is refused', () => {
    expect(xlString('a "b" \\c\td')).toBe('"a \\"b\\" \\\\c\\td"');
    expect(() => xlString('bell\x07')).toThrow(/control character/);
    expect(() => vifSpec({ mac: '52:54:00:12:34:56' })).toThrow(/Xen's OUI 00:16:3e/);
    expect(() => vifSpec({ mac: '00:16:3e:12:34:56', bridge: 'br,0' })).toThrow(/comma-separated/);
    expect(diskSpec({ target: '/a,b=c.img', vdev: 'xvda' })).toBe('format=raw,vdev=xvda,access=rw,target=/a,b=c.img');
    expect(() => xlConfig({ ...pv, name: 'bad name' })).toThrow(/domain name/);
    expect(() => xlConfig({ ...pv, memoryMiB: 0 })).toThrow(/memory must be a positive integer/);
  });

  test('random MACs are in the Xen OUI, unicast, and vary', () => {
    const macs = new Set(Array.from({ length: 50 }, () => randomXenMac()));
    expect(macs.size).toBeGreaterThan(45);
    for (const m of macs) expect(m).toMatch(/^00:16:3e:[0-7][0-9a-f](:[0-9a-f]{2}){2}$/);
    expect(randomXenMac(() => 0.999999)).toBe('00:16:3e:7f:ff:ff');
  });
});

test.describe('xl outputs', () => {
  test('xl list: Domain-0, a paused and a blocked domU', () => {
    const [dom0, paused] = parseXlList(rec('xl-list-paused.txt'));
    expect(dom0).toMatchObject({ name: 'Domain-0', id: 0, memMiB: 512, vcpus: 1, stateText: 'r-----', state: { running: true } });
    expect(paused).toMatchObject({ name: 'labrig-pv-rec', id: 2, memMiB: 128, vcpus: 1, state: { paused: true, running: false } });
    expect(parseXlList(rec('xl-list.txt'))[1]!.state).toEqual({
      running: false,
      blocked: true,
      paused: false,
      shutdown: false,
      crashed: false,
      dying: false,
    });
    expect(parseXlList(rec('xl-list-dom0-only.txt')).map((d) => d.name)).toEqual(['Domain-0']);
    expect(parseXlList('Name  ID   Mem VCPUs\tState\tTime(s)\nmy guest 7 64 1 --ps-d 0.3\n')[0]).toMatchObject({
      name: 'my guest',
      id: 7,
      state: { paused: true, shutdown: true, dying: true },
    });
    expect(() => parseXlList('libxl: error: cannot init xl context\n')).toThrow(/header missing/);
  });

  test('xl list -l: typed configs of dom0 and the domU', () => {
    const [dom0, domu] = parseXlListLong(rec('xl-list-l.json'));
    expect(dom0).toMatchObject({ domid: 0, name: 'Domain-0', type: 'pv', maxMemKiB: 524288 });
    expect(domu).toMatchObject({
      domid: 2,
      name: 'labrig-pv-rec',
      type: 'pv',
      maxMemKiB: 131072,
      kernel: pv.kernel,
      cmdline: (pv as { extra: string }).extra,
    });
    expect(domu!.uuid).toMatch(/^[0-9a-f-]{36}$/);
    expect(domu!.nics).toEqual([{ mac: '00:16:3e:12:34:56', bridge: 'xenbr0' }]);
  });

  test('xl info: version, memory, CPUs, virt_caps and the command line', () => {
    const info = parseXlInfo(rec('xl-info.txt'));
    expect(info).toMatchObject({
      host: 'emu-xen',
      release: '6.1.0-56-amd64',
      nrCpus: 1,
      totalMemoryMiB: 1023,
      xenVersion: '4.17.7',
      xenScheduler: 'credit2',
    });
    // TCG's qemu64 has SVM, so Xen says hvm, but no NPT (no hap) and Debian's Xen has no shadow paging
    expect(info.virtCaps).toEqual(['pv', 'hvm', 'gnttab-v1', 'gnttab-v2']);
    expect(hvmSupport(info.virtCaps)).toEqual({
      usable: false,
      why: expect.stringContaining('hvm without hap or shadow paging, so libxl refuses HVM guests'),
    });
    expect(hvmSupport(['pv', 'hvm', 'hap', 'shadow']).usable).toBe(true);
    expect(hvmSupport(['pv']).why).toMatch(/no hvm/);
    expect(info.xenCommandline).toBe('dom0_mem=512M,max:512M dom0_max_vcpus=1 console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all');
    expect(info.freeMemoryMiB).toBeLessThan(info.totalMemoryMiB);
    expect(() => parseXlInfo('host : x\n')).toThrow(/xl info has no release/);
  });

  test("a failed create is explained by libxc's first error, not the clean-up after it", () => {
    expect(xlFailureReason(rec('xl-create-vvv-missing-kernel.txt'))).toMatch(
      /^xc: error: panic: .*failed to open file '\/var\/lib\/labrig\/domu\/no-such-kernel'/,
    );
    expect(rec('xl-create-vvv-pv.txt')).toMatch(/libxl: debug: .*ao .*complete, rc=0/);
    // an HVM guest (hvm-tcg.cfg) on emu-xen: what the HVM test's skip reason rests on
    expect(xlFailureReason(rec('xl-create-vvv-hvm-tcg.txt'))).toMatch(/^libxl: error: .*neither hap nor shadow paging available$/);
  });
});

test.describe('Xen boot settings', () => {
  const settings = { dom0Mem: '512M,max:512M', dom0MaxVcpus: 1, console: 'com1', com1: '115200,8n1', loglvl: 'all', guestLoglvl: 'all' };

  test('the recorded serial boot: banner, command line, dom0 vCPUs, serial input to dom0', () => {
    const boot = parseXenSerialBoot(rec('serial-boot.log'))!;
    expect(boot).toMatchObject({ version: '4.17.7', dom0MaxVcpus: 1, serialInputToDom0: true });
    expect(boot.banner).toMatch(/^Xen version 4\.17\.7 \(Debian 4\.17\.7\+13-/);
    expect(boot.commandLine).toBe(parseXlInfo(rec('xl-info.txt')).xenCommandline);
    expect(commandlineMismatches(boot.commandLine, settings)).toEqual([]);
    expect(parseXenSerialBoot('no xen here\n')).toBeUndefined();
  });

  test('mismatches name the option, the configured value and what Xen has', () => {
    const line = 'dom0_mem=1024M dom0_max_vcpus=1 console=com1,vga com1=115200,8n1 noreboot';
    expect(commandlineMismatches(line, settings)).toEqual([
      'dom0_mem: configured 512M,max:512M, Xen has 1024M',
      'console: configured com1, Xen has com1,vga',
      'loglvl: configured all, Xen has (absent)',
      'guest_loglvl: configured all, Xen has (absent)',
    ]);
    expect(parseXenCommandline(line).get('noreboot')).toBe('');
  });

  test('dom0_mem as Xen reads it (no suffix: KiB)', () => {
    expect(parseDom0Mem('512M,max:512M')).toEqual({ amountMiB: 512, maxMiB: 512 });
    expect(parseDom0Mem('min:1G,max:8G,4096M')).toEqual({ minMiB: 1024, maxMiB: 8192, amountMiB: 4096 });
    expect(xenSizeMiB('1048576')).toBe(1024);
    expect(expectedDom0MiB({ dom0Mem: 'max:2G' })).toBe(2048);
    expect(() => xenSizeMiB('10%')).toThrow(/not a Xen size/);
  });
});

test.describe('domU traces and markers', () => {
  const domu = {
    domid: 2,
    name: 'labrig-pv-rec',
    cfgPath: '/tmp/rec/pv.cfg',
    uuid: JSON.parse(rec('xl-list-l.json'))[1].config.c_info.uuid as string,
  };

  test('a running domU is found in xenstore, as a vif and by its xl process; shut down is not yet gone; once gone nothing is left', () => {
    const running = findLeftovers(rec('leftovers-running.txt'), domu);
    expect(running.xenstore).toEqual(
      expect.arrayContaining([
        '/local/domain/2',
        '/libxl/2',
        '/local/domain/0/backend/vif/2',
        '/local/domain/0/backend/console/2',
        `/vm/${domu.uuid}`,
      ]),
    );
    expect(running.vifs).toEqual(['vif2.0']);
    expect(running.deviceModels).toEqual([]);
    // the `xl create` that waits for its domain to die, and destroys it
    expect(running.processes).toEqual([expect.stringMatching(/^\d+ xl -vvv create -p \/tmp\/rec\/pv\.cfg $/)]);
    // `xl shutdown -w` returns at the shutdown, before xl has destroyed the domain
    expect(isClean(findLeftovers(rec('leftovers-shutdown.txt'), domu))).toBe(false);
    const after = findLeftovers(rec('leftovers-after.txt'), domu);
    expect(after).toEqual({ xenstore: [], vifs: [], deviceModels: [], processes: [] });
    // another domid's entries are not this domain's
    expect(isClean(findLeftovers(rec('leftovers-running.txt'), { domid: 12, name: 'other' }))).toBe(true);
  });

  test('a device model of the domain is found by -xen-domid or its log name', () => {
    const out =
      '@@xenstore\n/local/domain/0 = ""\n@@net\nlo\n@@procs\n1 init\n301 /usr/libexec/xen-qemu-system-i386 -xen-domid 5 -no-shutdown -chardev socket,id=libxl-cmd\n302 /usr/bin/qemu-system-i386 -xen-domid 15\n';
    expect(findLeftovers(out, { domid: 5, name: 'g' }).deviceModels).toEqual([
      '301 /usr/libexec/xen-qemu-system-i386 -xen-domid 5 -no-shutdown -chardev socket,id=libxl-cmd',
    ]);
    expect(() => findLeftovers('@@net\n', { domid: 5, name: 'g' })).toThrow(/@@xenstore/);
  });

  test('a probe that printed nothing (or only its error) is a failed check, never "nothing left"', () => {
    const after = rec('leftovers-after.txt');
    expect(isClean(findLeftovers(after, domu))).toBe(true);
    const emptied = (name: string, body: string) => after.replace(new RegExp(`@@${name}\\n[\\s\\S]*?(?=\\n@@|$)`), `@@${name}\n${body}`);
    expect(() => findLeftovers(emptied('xenstore', 'sh: xenstore-ls: not found'), domu)).toThrow(
      /@@xenstore did not work: .*\/local\/domain\/0.*"sh: xenstore-ls: not found"/,
    );
    expect(() => findLeftovers(emptied('net', ''), domu)).toThrow(/@@net did not work: its output lacks the loopback interface/);
    expect(() => findLeftovers(emptied('procs', ''), domu)).toThrow(/@@procs did not work: its output lacks process 1/);
  });

  test('FreeBSD dom0: backend NICs are xnb<domid>.<devid>, bridge members come from ifconfig, no /proc or /sys is read', () => {
    // libxl_osdeps.h (xen tools/libs/light): NETBACK_NIC_NAME "vif%u.%d" on Linux, "xnb%u.%d" on FreeBSD
    expect([backendNic('linux', 2, 0), backendNic('freebsd', 2, 0)]).toEqual(['vif2.0', 'xnb2.0']);
    expect(vifLeftovers([backendNic('freebsd', 2, 0), `${backendNic('freebsd', 2, 1)}-emu`, backendNic('freebsd', 12, 0)], domu)).toEqual([
      'xnb2.0',
      'xnb2.1-emu',
    ]);
    const members = parseBridgeMembers('freebsd', recordedOutput('freebsd/ifconfig-bridge0.txt'));
    expect(members).toEqual(['epair3a', 'epair1a', 'epair8a', 'epair12a', 'epair11a', 'epair6a']);
    expect(parseBridgeMembers('linux', 'vif2.0\neth0\n')).toEqual(['vif2.0', 'eth0']);
    expect(bridgeMembersScript('freebsd', 'bridge0')).toBe("ifconfig 'bridge0'");
    expect(bridgeMembersScript('linux', 'xenbr0')).toBe("ls '/sys/class/net/xenbr0/brif'");
    const script = leftoversScript('freebsd');
    expect(script).not.toMatch(/\/proc|\/sys/);
    expect(script).toContain('ifconfig -l');
    expect(processNamesScript('freebsd')).toBe('ps -axo comm=');
    expect(leftoversScript('linux')).toContain('ls /sys/class/net');
  });

  test("the guest's ready line matches; the kernel's echo of its command line does not", () => {
    const re = readyPattern('0123456789ab');
    expect(`[    0.000000] Command line: console=hvc0 ${markerArgument('0123456789ab')}`).not.toMatch(re);
    expect('labrig-domu ready: 0123456789ab (6.1.0-56-amd64, hypervisor xen)').toMatch(re);
    expect('labrig-domu ready: 0123456789abc').not.toMatch(re);
  });

  test('a death watch fails the guarded work the moment Xen panics on the console', async () => {
    const stream = new PassThrough();
    const console = Console.fromStreams(stream, undefined, { name: 'xen', logPath: join(tmpdir(), `labrig-xl-test-${process.pid}.log`) });
    const watch = watchForDeath(console, 'Xen dying');
    const work = new Promise((r) => setTimeout(r, 5000, 'done'));
    const t0 = Date.now();
    setTimeout(() => stream.write('(XEN) ****************************************\r\n(XEN) Panic on CPU 0:\r\n(XEN) FATAL TRAP\r\n'), 100);
    await expect(watch.guard(work)).rejects.toThrow(/\[product:panic\].*Panic on CPU 0/);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(watch.died?.kind).toBe('panic');
    watch.stop();
    const quiet = watchForDeath(console, 'nothing');
    await expect(quiet.guard(Promise.resolve(7))).resolves.toBe(7);
    quiet.stop();
    await console.close();
  });
});
