/**
 * The accelerator follows the host: `auto` asks the host for a usable /dev/kvm, a setting in the
 * lab config overrides, and `kvm` on a host without it is the host's failure, said as such. On a
 * real local sshd (this machine has no /dev/kvm: the KVM-present branch never runs here).
 */

import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import type { SshConfig } from '../drivers/ssh-options.js';
import { domainTypeOf, hostAccel } from '../targets/accel.js';
import { Host } from '../targets/host.js';
import { hostSchema } from '../targets/schema.js';
import { testSshd } from './helpers/sshd.js';

let ssh: SshConfig;
let cleanup: (() => Promise<void>) | undefined;
let dir: string;
test.beforeAll(async () => {
  const s = await testSshd();
  ssh = s.config;
  cleanup = s.cleanup;
  dir = await mkdtemp(join(tmpdir(), 'labrig-accel-'));
});
test.afterAll(async () => {
  await cleanup?.();
  await rm(dir, { recursive: true, force: true });
});

async function accelOf(accel: 'auto' | 'kvm' | 'tcg') {
  const host = new Host(hostSchema.parse({ name: 'local', role: 'local', ssh, expect: { arch: 'x86_64' }, accel }), { logDir: dir });
  try {
    return await hostAccel(host);
  } finally {
    await host.close();
  }
}

test('auto follows /dev/kvm; tcg is taken as set; kvm without /dev/kvm fails as the host’s', async () => {
  test.skip(existsSync('/dev/kvm'), 'this runner has /dev/kvm: the no-KVM branches are not what it would show');
  expect(await accelOf('auto')).toEqual({ accel: 'tcg', evidence: 'auto: no usable /dev/kvm' });
  expect(await accelOf('tcg')).toEqual({ accel: 'tcg', evidence: 'set in the lab config (accel: tcg); /dev/kvm absent' });
  await expect(accelOf('kvm')).rejects.toThrow(/^\[product:mismatch\] host local: accel is set to kvm, but \/dev\/kvm is not usable/);
  expect(domainTypeOf('tcg')).toBe('qemu');
  expect(domainTypeOf('kvm')).toBe('kvm');
});
