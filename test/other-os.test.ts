/**
 * Hosts that are not Debian or not Linux (issue 14, item 3), on outputs recorded on those
 * systems (test/recorded/{freebsd,arch,rhel}, each naming its source): architecture names,
 * the OS family, the boot identity without /proc, FreeBSD's death strings, kernel naming for kexec.
 */

import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { expect, test } from '@playwright/test';
import { Console } from '../drivers/console.js';
import { defaultDeathStrings } from '../drivers/console-text.js';
import { bootIdentityCommand, isNewBoot, parseBootIdentity } from '../targets/boot-identity.js';
import { parseLab } from '../targets/config.js';
import { parseFacts } from '../targets/facts.js';
import { detectOsFamily } from '../targets/host-os.js';
import { chooseKexecTarget, installedKernels } from '../targets/kexec.js';
import { normalizeArch, osFamilyOf } from '../targets/platform.js';
import { recordedOutput } from './helpers/recorded.js';

const key = `SHA256:${'x'.repeat(43)}`;
const labWith = (over: Record<string, unknown>) => ({
  name: 'l',
  hosts: [
    {
      name: 'dom0-freebsd',
      role: 'x86-xen',
      ssh: { address: '127.0.0.1', identityFile: '/k', hostKey: key },
      expect: { arch: 'x86_64' },
      ...over,
    },
  ],
});
const configError = (input: unknown) => {
  try {
    parseLab(input);
  } catch (e) {
    return (e as Error).message;
  }
  return 'parsed';
};

test.describe('architecture names and the OS family', () => {
  test("a FreeBSD dom0's amd64 is the lab's x86_64, in the config and in what the host says", () => {
    // FreeBSD's uname -m prints MACHINE (amd64, arm64); arch(7) and nodejs/node 24b9d29 ("uname -m is amd64 on freebsd")
    expect(['amd64', 'x86_64', 'arm64', 'aarch64', 'armv7l', 'armhf', 'armv7'].map(normalizeArch)).toEqual([
      'x86_64',
      'x86_64',
      'aarch64',
      'aarch64',
      'armv7l',
      'armv7l',
      'armv7l',
    ]);
    expect(normalizeArch('arm')).toBeUndefined();
    const lab = parseLab(labWith({ os: 'freebsd', expect: { arch: 'amd64' }, suites: { hostFacts: { domcapsArch: 'arm64' } } }));
    expect(lab.hosts[0]!.expect.arch).toBe('x86_64');
    expect(lab.hosts[0]!.suites.hostFacts?.domcapsArch).toBe('aarch64');
    expect(lab.hosts[0]!.os).toBe('freebsd');
    const facts = parseFacts(
      ['@@os', 'FreeBSD', '@@arch', 'amd64', '@@bootId', recordedOutput('freebsd/sysctl-kern-boottime.txt')].join('\n'),
    );
    expect({ os: facts.os, arch: facts.arch, bootId: facts.bootId }).toEqual({
      os: 'freebsd',
      arch: lab.hosts[0]!.expect.arch,
      bootId: 'kern.boottime=1634047554.237429',
    });
  });

  test('an unknown OS or architecture is one config line naming the field', () => {
    expect(configError(labWith({ os: 'solaris' }))).toMatch(
      /^ {2}hosts\[0\]\.os: an OS family: linux or freebsd \(uname -s: Linux or FreeBSD\), not "solaris"$/m,
    );
    expect(configError(labWith({ expect: { arch: 'sparc64' } }))).toMatch(
      /^ {2}hosts\[0\]\.expect\.arch: an architecture: x86_64 \(amd64\), aarch64 \(arm64\) or armv7l \(armhf\), not "sparc64"$/m,
    );
    expect(configError(labWith({ expect: {} }))).toMatch(/hosts\[0\]\.expect\.arch: required: an architecture/);
    expect(osFamilyOf('FreeBSD\n')).toBe('freebsd');
    expect(osFamilyOf('Linux')).toBe('linux');
    expect(osFamilyOf('SunOS')).toBeUndefined();
    // a host that is neither reads as null: doctor fails it rather than guessing
    expect(parseFacts('@@os\nSunOS\n@@arch\ni86pc').os).toBeNull();
  });

  test('uname -s that did not finish is the host unreachable, an OS we do not drive is config', async () => {
    const answer = (code: number | null, stdout: string) => async () => ({ stdout, stderr: '', code, signal: null, ms: 1 });
    expect(await detectOsFamily(answer(0, 'FreeBSD\n'), 'h')).toBe('freebsd');
    await expect(detectOsFamily(answer(null, 'Linux\n'), 'h')).rejects.toThrow(
      /^\[lab:unreachable\] host h: `uname -s` did not succeed \(exit null\)/,
    );
    await expect(detectOsFamily(answer(0, 'SunOS\n'), 'h')).rejects.toThrow(/^\[lab:config\] host h: uname -s says "SunOS"/);
  });

  test("RHEL's QEMU at /usr/libexec/qemu-kvm is found and versioned", () => {
    const facts = parseFacts(`@@qemu\n/usr/libexec/qemu-kvm\n${recordedOutput('rhel/qemu-kvm-version.txt')}`);
    expect({ qemu: facts.qemu, qemuPath: facts.qemuPath }).toEqual({ qemu: '1.5.3', qemuPath: '/usr/libexec/qemu-kvm' });
  });
});

test.describe('boot identity without /proc', () => {
  const boottime = recordedOutput('freebsd/sysctl-kern-boottime.txt').trim();
  const sec = 1634047554;
  // the command's second line is `date +%s` on the host: here the host clock `at` seconds after that boot
  const reading = (line: string, at: number) => parseBootIdentity('freebsd', `${line}\n${sec + at}\n`);

  test('FreeBSD: kern.boottime is the id, the host clock minus it the uptime', () => {
    expect(bootIdentityCommand('freebsd')).toBe('sysctl -n kern.boottime && date +%s');
    expect(bootIdentityCommand('linux')).toBe('cat /proc/sys/kernel/random/boot_id');
    expect(reading(boottime, 42)).toEqual({ id: 'kern.boottime=1634047554.237429', uptimeS: 42 });
    // sysctl -n prints the value without its name
    expect(reading(boottime.replace(/^kern\.boottime: /, ''), 42)?.id).toBe('kern.boottime=1634047554.237429');
    expect(parseBootIdentity('freebsd', "sysctl: unknown oid 'kern.boottime'\n")).toBeUndefined();
    expect(parseBootIdentity('linux', 'e4676a29-5b9b-4cac-8244-22777d054212\n')).toEqual({ id: 'e4676a29-5b9b-4cac-8244-22777d054212' });
    expect(parseBootIdentity('linux', 'cat: /proc/sys/kernel/random/boot_id: No such file or directory')).toBeUndefined();
  });

  test('a new boot is a changed boottime AND a boot younger than the wait; a stepped clock is not a reboot', () => {
    const before = reading(boottime, 3600)!.id;
    // same boot, read again a minute later
    expect(isNewBoot(before, reading(boottime, 3660)!, 60_000)).toBe(false);
    // ntpd stepped the clock 5 s: boottime moved, uptime still an hour (time(9): boottime = new_time - uptime)
    const stepped = `{ sec = ${sec + 5}, usec = 237429 } Tue Oct 12 08:05:59 2021`;
    expect(isNewBoot(before, parseBootIdentity('freebsd', `${stepped}\n${sec + 5 + 3660}\n`)!, 60_000)).toBe(false);
    // rebooted: a later boottime, up 20 s after a 90 s wait
    const rebooted = `{ sec = ${sec + 3700}, usec = 1 } Tue Oct 12 09:07:34 2021`;
    expect(isNewBoot(before, parseBootIdentity('freebsd', `${rebooted}\n${sec + 3720}\n`)!, 90_000)).toBe(true);
    // Linux: the random boot_id alone
    expect(isNewBoot('a', { id: 'b' }, 0)).toBe(true);
    expect(isNewBoot('a', { id: 'a' }, 999_000)).toBe(false);
  });
});

test.describe("FreeBSD's death strings", () => {
  const cases = ['freebsd/panic-fatal-trap-9.txt', 'freebsd/panic-after-output.txt', 'freebsd/panic-during-boot.txt'];
  for (const name of cases)
    test(`a recorded FreeBSD panic ends the wait at once: ${name}`, async () => {
      const stream = new PassThrough();
      const console = Console.fromStreams(stream, undefined, {
        name: 'fbsd',
        logPath: join(tmpdir(), `labrig-other-os-${process.pid}-${name.replace(/\W/g, '_')}.log`),
      });
      const waiting = console.expect(/login: $/, { timeoutMs: 10_000, what: 'the login prompt' });
      stream.write(recordedOutput(name).replace(/\n/g, '\r\n'));
      await expect(waiting).rejects.toThrow(/\[product:panic\] .*(Fatal trap \d+|panic: )/);
      await console.close();
    });

  test('a Linux/Xen boot log of the emulated lab trips none of the FreeBSD patterns', () => {
    const log = readFileSync(new URL('./recorded/xen/serial-boot.log', import.meta.url), 'utf8');
    const freebsd = defaultDeathStrings.slice(-2);
    expect(freebsd.map(String)).toEqual([expect.stringContaining('Fatal trap'), expect.stringContaining('panic: ')]);
    expect(freebsd.filter((re) => re.test(log))).toEqual([]);
    // a "panic:" that is not followed by vpanic()'s cpuid line or backtrace is not a FreeBSD panic
    expect(freebsd.some((re) => re.test('grep -c panic: /var/log/messages\r\n0\r\n'))).toBe(false);
  });
});

test.describe('kexec: kernel naming beyond Debian', () => {
  test('RHEL: vmlinuz-<ver> with initramfs-<ver>.img; the rescue copy is no kexec target', () => {
    const grubby = recordedOutput('rhel/grubby-info-all.txt');
    const files = [...grubby.matchAll(/(?:kernel|initrd)="\/boot\/(\S+?)[" ]/g)].map((m) => m[1]!);
    expect(files).toEqual([
      'vmlinuz-4.18.0-372.9.1.el8.x86_64',
      'initramfs-4.18.0-372.9.1.el8.x86_64.img',
      'vmlinuz-0-rescue-67db13ba8cdb420794ef3ee0a8313205',
      'initramfs-0-rescue-67db13ba8cdb420794ef3ee0a8313205.img',
    ]);
    const kernels = installedKernels(files.join('\n'));
    expect(kernels).toEqual([
      {
        version: '4.18.0-372.9.1.el8.x86_64',
        image: '/boot/vmlinuz-4.18.0-372.9.1.el8.x86_64',
        initrd: '/boot/initramfs-4.18.0-372.9.1.el8.x86_64.img',
      },
    ]);
    expect(() => chooseKexecTarget(kernels, '4.18.0-372.9.1.el8.x86_64')).toThrow(/no installed kernel other than the running/);
  });

  test('Arch: vmlinuz-<pkgbase> and initramfs-<pkgbase>.img, the version from the modules pkgbase; no initrd is fine', () => {
    const wiki = recordedOutput('arch/kexec-wiki.txt');
    const image = /kexec -l \/boot\/(vmlinuz-linux) --initrd=\/boot\/(initramfs-linux\.img)/.exec(wiki)!;
    const version = recordedOutput('arch/uname-r.txt').trim();
    const listing = (boot: string[], pkgbase: string[]) => ['@@boot', ...boot, '@@pkgbase', ...pkgbase].join('\n');
    const withInitrd = installedKernels(listing([image[1]!, image[2]!, 'initramfs-linux-fallback.img'], [`${version} linux`]));
    expect(withInitrd).toEqual([{ version, image: '/boot/vmlinuz-linux', initrd: '/boot/initramfs-linux.img' }]);
    expect(chooseKexecTarget(withInitrd, '6.1.0-56-amd64', version).image).toBe('/boot/vmlinuz-linux');
    expect(installedKernels(listing([image[1]!], [`${version} linux`]))).toEqual([{ version, image: '/boot/vmlinuz-linux' }]);
    // without the pkgbase files nothing says which uname -r vmlinuz-linux boots: not guessed
    expect(installedKernels(listing([image[1]!, image[2]!], []))).toEqual([]);
  });
});
