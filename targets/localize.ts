/**
 * A copy of a real lab's config that can only reach this machine: every address (SSH, console
 * server, BMC, Redfish URL, an address inside a console or power command) moves to its own
 * 127.0.0.x before anything connects, and the copy is checked to hold no other address. Used to
 * try a lab's config (doctor, the suites) against the emulated lab or against nothing at all.
 */
import { isIP } from 'node:net';
import { LabError } from '../drivers/errors.js';
import type { Lab } from './schema.js';

const IPV4 = /\b(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})\b/g;
const isLoopback = (host: string) => host === 'localhost' || host.startsWith('127.') || host === '::1' || host === '[::1]';

/** Fields whose whole value is a host name or address. */
const ADDRESS_KEYS = new Set(['address']);

type Json = string | number | boolean | null | Json[] | { [k: string]: Json };

export interface Localized {
  lab: Lab;
  /** Original address → 127.0.0.x, in the order first met. */
  moved: Record<string, string>;
}

export function localizeLab(lab: Lab, firstOctet = 10): Localized {
  const moved: Record<string, string> = {};
  let next = firstOctet;
  const to = (original: string) => {
    if (isLoopback(original)) return original;
    if (next > 254) throw new LabError('config', 'more than 245 distinct addresses to move to 127.0.0.x');
    return (moved[original] ??= `127.0.0.${next++}`);
  };
  const rewrite = (value: string, key: string | undefined): string => {
    if (key && ADDRESS_KEYS.has(key)) return to(value);
    if (key === 'url') {
      const url = new URL(value);
      url.hostname = to(url.hostname);
      return url.toString().replace(/\/$/, value.endsWith('/') ? '/' : '');
    }
    return value.replace(IPV4, (ip) => (isIP(ip) ? to(ip) : ip));
  };
  const walk = (v: Json, key?: string): Json => {
    if (typeof v === 'string') return rewrite(v, key);
    if (Array.isArray(v)) return v.map((item) => walk(item, key));
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, item]) => [k, walk(item, k)]));
    return v;
  };
  const copy = walk(JSON.parse(JSON.stringify(lab)) as Json) as unknown as Lab;
  assertLoopbackOnly(copy);
  return { lab: copy, moved };
}

/** Throws, naming the field, if any address in `lab` is not on this machine. */
export function assertLoopbackOnly(lab: Lab): void {
  const outside: string[] = [];
  const walk = (v: unknown, path: string, key?: string) => {
    if (typeof v === 'string') {
      const hosts =
        key && ADDRESS_KEYS.has(key)
          ? [v]
          : key === 'url'
            ? [new URL(v).hostname]
            : [...v.matchAll(IPV4)].map((m) => m[1]!).filter((ip) => isIP(ip));
      for (const h of hosts) if (!isLoopback(h)) outside.push(`${path}: ${h}`);
    } else if (Array.isArray(v)) v.forEach((item, i) => walk(item, `${path}[${i}]`, key));
    else if (v && typeof v === 'object') for (const [k, item] of Object.entries(v)) walk(item, path ? `${path}.${k}` : k, k);
  };
  walk(lab, '');
  if (outside.length) throw new LabError('config', `addresses outside this machine:\n  ${outside.join('\n  ')}`);
}
