/**
 * A libvirt build's own libvirtd (components.libvirtDir) on a real host (a throwaway sshd on this
 * machine): bookworm-backports' libvirt 11.3 with QEMU 10.0 answers through its own socket and
 * virsh, beside the host's libvirt, which stays as it was; a build that misses libraries and a
 * libvirtd that does not start are one line each naming the component, and the host sits the run out.
 */
import { readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { Virsh } from '../drivers/libvirt.js';
import { isOurProcess } from '../drivers/proc.js';
import { shellQuote } from '../drivers/ssh.js';
import { applyComponents, applyLabComponents } from '../targets/components.js';
import { wrapperScript } from '../targets/components-build.js';
import { fetchComponents } from '../targets/components-fetch.js';
import {
  buildLibvirtd,
  buildLibvirtdParams,
  libvirtEndpoint,
  startBuildLibvirtd,
  stopBuildLibvirtd,
  sweepBuildLibvirtd,
} from '../targets/components-libvirtd.js';
import { harnessName } from '../targets/harness-name.js';
import { Host } from '../targets/host.js';
import { hostSchema, labSchema } from '../targets/schema.js';
import { takeQemuSlot } from './helpers/qemu-slot.js';
import { testSshd } from './helpers/sshd.js';

test.describe.configure({ mode: 'serial', timeout: 15 * 60_000 });

/** libvirt runs QEMU as libvirt-qemu: the build and the state must be outside /root. */
const INTO = '/var/tmp/labrig-components';

let env: Awaited<ReturnType<typeof testSshd>>;
let scratch: string;
let bin: string;
let release: (() => Promise<void>) | undefined;
const hosts: Host[] = [];

function hostWith(components: object): Host {
  const config = hostSchema.parse({ name: 'runner', role: 'local', ssh: env.config, expect: { arch: 'x86_64' }, components });
  const h = new Host(config, { logDir: scratch });
  hosts.push(h);
  return h;
}

const mounts = () => readFileSync('/proc/self/mounts', 'utf8');
const systemLibvirtd = () => {
  const pid = Number(readFileSync('/run/libvirtd.pid', { encoding: 'utf8', flag: 'r' }).trim() || 0);
  return isOurProcess(pid, '/usr/sbin/libvirtd') ? pid : undefined;
};
const systemPid = () => {
  try {
    return systemLibvirtd();
  } catch {
    return undefined;
  }
};

test.beforeAll(async () => {
  // libvirtd runs QEMU (capabilities), and a lab's armhf suite restarts the host's libvirtd: one QEMU workload at a time
  release = await takeQemuSlot('components-libvirtd.test');
  env = await testSshd();
  scratch = await mkdtemp('/var/tmp/labrig-libvirtd-test-');
  // the build validate uses (cached after its first fetch, ≈2 min cold)
  const { build } = await fetchComponents({ versions: { qemu: '10.0.2', libvirt: '11.3.0' }, into: INTO });
  bin = join(build.dir, 'bin');
});
test.afterAll(async () => {
  await Promise.all(hosts.map((h) => h.close().catch(() => undefined)));
  await env?.cleanup();
  await rm(scratch, { recursive: true, force: true });
  await release?.();
});

test('a libvirt build: checked, its own libvirtd answers its own virsh and runs QEMU 10; the host libvirt untouched', async () => {
  const host = hostWith({ libvirtDir: bin, qemuDir: bin, libvirtStateDir: join(scratch, 'state') });
  const mountsBefore = mounts();
  const systemBefore = systemPid();

  const applied = await applyComponents(host);
  const libvirtd = applied.find((a) => a.component === `${bin}/libvirtd`);
  expect(libvirtd).toMatchObject({ wanted: bin, has: '11.3.0', action: 'checked' });
  expect(libvirtd?.path).toMatch(/\/root\/usr\/sbin\/libvirtd$/);
  expect(libvirtd?.sha256).toMatch(/^[0-9a-f]{64}$/);
  expect(applied.find((a) => a.component === `${bin}/virsh`)?.has).toBe('11.3.0');
  expect((await host.facts()).libvirt).toBe('11.3.0');

  const b = buildLibvirtd(host.config)!;
  const running = await startBuildLibvirtd(host, b);
  try {
    expect(isOurProcess(running.pid, b.pidFile)).toBe(true);
    const virsh = new Virsh(host, libvirtEndpoint(host.config));
    expect((await virsh.version()).libvirt).toBe('11.3.0');
    // libvirt 11 told the emulator path runs the build's QEMU 10 (its modules and firmware data its own)
    const caps = await virsh.domcapabilities('aarch64', 'virt', 'qemu', `${bin}/qemu-system-aarch64`);
    expect(caps).toContain(`<path>${bin}/qemu-system-aarch64</path>`);
    expect(caps).toMatch(/<machine>virt-10\.0<\/machine>/);
    // the armhf suite's hook and restart follow the build's libvirtd
    const params = buildLibvirtdParams(host.config, {
      hookPath: '/etc/libvirt/hooks/qemu',
      hookLog: '/var/log/libvirt/labrig-boot-hook.log',
      restartLibvirtd: 'systemctl restart libvirtd',
    });
    expect(params.hookPath).toBe(`${b.stateDir}/etc/hooks/qemu`);
    expect(params.hookLog).toBe('/var/log/libvirt/labrig-boot-hook.log');
    expect((await host.run(params.restartLibvirtd, { timeoutMs: 300_000 })).code).toBe(0);
    const after = Number((await readFile(b.pidFile, 'utf8')).trim());
    expect(after).not.toBe(running.pid);
    expect(isOurProcess(running.pid, b.pidFile)).toBe(false);
    expect((await virsh.version()).libvirt).toBe('11.3.0');
    // a crashed run's domain left in the build's libvirtd is swept; this run's and a stranger's stay
    const names = { old: harnessName('pcie', 'run-that-crashed'), ours: harnessName('pcie', 'this-run'), other: 'someone-elses-vm' };
    for (const name of Object.values(names))
      await host.exec(`${shellQuote(b.endpoint.virsh)} -q -c ${shellQuote(b.endpoint.uri)} define /dev/stdin`, {
        input: `<domain type='qemu'><name>${name}</name><memory unit='MiB'>64</memory><os><type arch='aarch64' machine='virt'>hvm</type></os><devices><emulator>${bin}/qemu-system-aarch64</emulator></devices></domain>`,
        check: true,
        timeoutMs: 120_000,
      });
    expect(await sweepBuildLibvirtd(host, b, 'this-run')).toEqual([names.old]);
    const left = (await virsh.run('list --all --name')).split('\n').map((n) => n.trim());
    expect(left).not.toContain(names.old);
    expect(left).toEqual(expect.arrayContaining([names.ours, names.other]));
    for (const name of [names.ours, names.other]) await virsh.remove(name);
    // nothing was mounted outside the daemon's namespace; the host's libvirtd is the one it was
    expect(mounts()).toBe(mountsBefore);
    expect(systemPid()).toBe(systemBefore);
  } finally {
    await stopBuildLibvirtd(host, b);
  }
  expect(isOurProcess(running.virtlogdPid, join(b.stateDir, 'virtlogd.pid'))).toBe(false);
  expect(await readFile(b.pidFile, 'utf8').catch(() => 'gone')).toBe('gone');
});

test('a libvirt build whose binaries miss libraries: one line naming libvirt; the host sits the run out', async () => {
  // the build's binaries without the build's libraries: the system's libvirt.so.0 (9.0) lacks their symbols
  const broken = join(scratch, 'no-libs');
  await mkdir(broken, { recursive: true });
  for (const name of ['libvirtd', 'virtlogd', 'virsh']) {
    const real = /^# binary: (.*)$/m.exec(await readFile(join(bin, name), 'utf8'))![1]!;
    await writeFile(join(broken, name), wrapperScript({ binary: real, libDirs: [] }), { mode: 0o755 });
  }
  const lab = labSchema.parse({
    name: 'components',
    hosts: [{ name: 'broken', role: 'local', ssh: env.config, expect: { arch: 'x86_64' }, components: { libvirtDir: broken } }],
  });
  const { failed } = await applyLabComponents(lab, scratch, () => undefined);
  expect(failed.broken).toMatch(
    /^\[lab:config\] host broken: components\.libvirtDir: \S+\/libvirtd does not run \(missing LIBVIRT_\S+ \(required by libvirtd\)\)/,
  );
});

test('a libvirtd from the build that does not start: one line naming it, nothing left running', async () => {
  // a build whose QEMU driver module is damaged: --version answers, the daemon cannot load its driver
  const broken = join(scratch, 'bad-module');
  await mkdir(join(broken, 'driver'), { recursive: true });
  const module = /^LIBVIRT_DRIVER_DIR='(.*)'$/m.exec(await readFile(join(bin, 'libvirtd'), 'utf8'))![1]!;
  await writeFile(
    join(broken, 'driver', 'libvirt_driver_qemu.so'),
    (await readFile(join(module, 'libvirt_driver_qemu.so'))).subarray(0, 4096),
  );
  const libvirtd = (await readFile(join(bin, 'libvirtd'), 'utf8')).replace(
    /^LIBVIRT_DRIVER_DIR=.*$/m,
    `LIBVIRT_DRIVER_DIR='${broken}/driver'`,
  );
  await writeFile(join(broken, 'libvirtd'), libvirtd, { mode: 0o755 });
  for (const name of ['virtlogd', 'virsh']) await copyFile(join(bin, name), join(broken, name));
  const host = hostWith({ libvirtDir: broken, libvirtStateDir: join(scratch, 'bad-state') });
  const e = await applyComponents(host).catch((x: Error) => x);
  expect((e as Error).message).toMatch(
    new RegExp(
      `^\\[lab:config\\] host runner: components\\.libvirtDir: libvirtd from ${broken.replace(/[.+]/g, '\\$&')} did not start \\(exit \\d+\\): \\S`,
    ),
  );
  const b = buildLibvirtd(host.config)!;
  expect((await host.run(`${b.script} status`)).stdout.trim()).toBe('libvirtd  virtlogd');
});
