/**
 * Which accelerator a host's VMs run under: KVM on hardware that has it, TCG where it does not
 * (the emulated lab, where nested KVM is absent). `hosts[i].accel` overrides; `auto` asks the
 * host (/dev/kvm readable and writable by the user the harness logs in as).
 */
import { ProductError } from '../drivers/errors.js';
import type { Host } from './host.js';

export interface Accel {
  accel: 'kvm' | 'tcg';
  /** What decided it, for the report. */
  evidence: string;
}

const resolved = new WeakMap<Host, Promise<Accel>>();

async function ask(host: Host): Promise<Accel> {
  const setting = host.config.accel;
  const kvm = (await host.run('test -r /dev/kvm && test -w /dev/kvm', { timeoutMs: 30_000 })).code === 0;
  if (setting === 'kvm' && !kvm)
    throw new ProductError(
      'mismatch',
      `host ${host.name}: accel is set to kvm, but /dev/kvm is not usable on it (the kernel under test lost KVM?)`,
    );
  if (setting !== 'auto')
    return { accel: setting, evidence: `set in the lab config (accel: ${setting}); /dev/kvm ${kvm ? 'usable' : 'absent'}` };
  return kvm ? { accel: 'kvm', evidence: 'auto: /dev/kvm usable' } : { accel: 'tcg', evidence: 'auto: no usable /dev/kvm' };
}

export function hostAccel(host: Host): Promise<Accel> {
  let p = resolved.get(host);
  if (!p) resolved.set(host, (p = ask(host)));
  return p;
}

/** libvirt's name for it: `<domain type='kvm'>` or `type='qemu'` (TCG). */
export const domainTypeOf = (a: Accel['accel']): 'kvm' | 'qemu' => (a === 'kvm' ? 'kvm' : 'qemu');
