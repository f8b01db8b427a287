/**
 * Version validation on a real host (a throwaway sshd on this machine): packages already at
 * their version are left alone, an unknown version fails as a lab failure naming the package,
 * and a QEMU build directory is what facts and the suites then use.
 */

import { chmod, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { domainXml, summariseDomain } from '../drivers/domain-xml.js';
import { LabError } from '../drivers/errors.js';
import { runLocal } from '../drivers/local.js';
import { applyComponents, applyLabComponents, qemuBuildBinary } from '../targets/components.js';
import { Host } from '../targets/host.js';
import { hostSchema, labSchema } from '../targets/schema.js';
import { testSshd } from './helpers/sshd.js';

test.describe.configure({ mode: 'serial' });

let env: Awaited<ReturnType<typeof testSshd>>;
let dir: string;
const hosts: Host[] = [];

function hostWith(components: object): Host {
  const config = hostSchema.parse({ name: 'runner', role: 'local', ssh: env.config, expect: { arch: 'x86_64' }, components });
  const h = new Host(config, { logDir: dir });
  hosts.push(h);
  return h;
}

test.beforeAll(async () => {
  env = await testSshd();
  dir = await mkdtemp(join(tmpdir(), 'labrig-components-'));
});
test.afterAll(async () => {
  await Promise.all(hosts.map((h) => h.close().catch(() => undefined)));
  await env?.cleanup();
  await rm(dir, { recursive: true, force: true });
});

test('a package already at the wanted version is left alone; an unknown version fails naming it', async () => {
  const version = (await runLocal(['dpkg-query', '-W', '-f', '${Version}', 'qemu-system-arm'])).stdout.trim();
  expect(version).not.toBe('');
  expect(await applyComponents(hostWith({ packages: [{ name: 'qemu-system-arm', version }] }))).toEqual([
    { component: 'qemu-system-arm', wanted: version, has: version, action: 'already there' },
  ]);
  // a real apt-get run that cannot succeed: the version does not exist
  const err = await applyComponents(hostWith({ packages: [{ name: 'qemu-system-arm', version: '0.0~labrig-absent' }] })).catch(
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(LabError);
  expect((err as LabError).kind).toBe('config');
  expect((err as Error).message).toContain(`components.packages: installing qemu-system-arm 0.0~labrig-absent (has ${version}) failed`);
  expect((await runLocal(['dpkg-query', '-W', '-f', '${Version}', 'qemu-system-arm'])).stdout.trim()).toBe(version);
});

test('a QEMU build directory: checked, used by facts and by domain XML; a broken one is refused', async () => {
  const build = join(dir, 'qemu-build');
  await runLocal(['mkdir', '-p', build]);
  await symlink('/usr/bin/qemu-system-aarch64', join(build, 'qemu-system-aarch64'));
  const host = hostWith({ qemuDir: build });
  const applied = await applyComponents(host);
  // what ran is the file behind the link, with its hash: the manifest records it
  const sha256 = (await runLocal(['sha256sum', '/usr/bin/qemu-system-aarch64'])).stdout.split(' ')[0];
  expect(applied).toEqual([
    {
      component: `${build}/qemu-system-aarch64`,
      wanted: build,
      has: expect.stringMatching(/^\d+\.\d+/),
      action: 'checked',
      path: '/usr/bin/qemu-system-aarch64',
      sha256,
    },
  ]);
  const facts = await host.facts();
  expect(facts.qemuPath).toBe(`${build}/qemu-system-aarch64`);
  expect(facts.qemu).toBe(applied[0]!.has);

  const emulator = qemuBuildBinary(host.config, 'qemu-system-aarch64');
  expect(emulator).toBe(`${build}/qemu-system-aarch64`);
  const xml = domainXml({
    name: 'd',
    type: 'qemu',
    arch: 'aarch64',
    machine: 'virt',
    emulator,
    memoryMiB: 64,
    vcpus: 1,
    serialLog: '/tmp/d.log',
  });
  expect(summariseDomain(xml).emulator).toBe(emulator);
  expect(qemuBuildBinary(hostWith({}).config, 'qemu-system-aarch64')).toBeUndefined();

  const broken = join(dir, 'broken-build');
  await runLocal(['mkdir', '-p', broken]);
  await writeFile(join(broken, 'qemu-system-x86_64'), '#!/bin/sh\nexit 1\n');
  await chmod(join(broken, 'qemu-system-x86_64'), 0o755);
  await expect(applyComponents(hostWith({ qemuDir: broken }))).rejects.toThrow(/components\.qemuDir: .*qemu-system-x86_64 do not run/);
  await expect(applyComponents(hostWith({ qemuDir: join(dir, 'absent') }))).rejects.toThrow(
    /components\.qemuDir: .*absent holds no runnable qemu-system-\* binary/,
  );
});

test('the main job applies every host and names the one that failed, the others go on', async () => {
  const good = join(dir, 'qemu-build');
  const lab = labSchema.parse({
    name: 'components',
    hosts: [
      { name: 'good', role: 'local', ssh: env.config, expect: { arch: 'x86_64' }, components: { qemuDir: good } },
      { name: 'bad', role: 'local', ssh: env.config, expect: { arch: 'x86_64' }, components: { qemuDir: join(dir, 'absent') } },
      { name: 'plain', role: 'local', ssh: env.config, expect: { arch: 'x86_64' } },
    ],
  });
  const said: string[] = [];
  const { record, failed } = await applyLabComponents(lab, dir, (l) => said.push(l));
  expect(Object.keys(record)).toEqual(['good', 'bad']);
  expect(Object.keys(failed)).toEqual(['bad']);
  expect(failed.bad).toMatch(/^\[lab:config\] host bad: components\.qemuDir: /);
  expect(said).toEqual([expect.stringMatching(/^good: .*qemu-system-aarch64 \S+ \(checked\)$/)]);
});
