/**
 * What a removed domain may leave behind in dom0, found in plain command outputs: xenstore
 * paths of its domid or uuid (its own subtree, libxl's, dom0's backends and device-model
 * nodes), vif interfaces, device-model (qemu-dm) and other processes naming it. Pure:
 * tested on recorded outputs taken while a domU ran, once it had shut down but was not yet
 * destroyed, and after it was gone.
 */

import type { OsFamily } from '../../targets/platform.js';

export interface DomainIdentity {
  domid: number;
  name: string;
  uuid?: string;
  /** The cfg it was created from: the `xl create` left watching it names that file. */
  cfgPath?: string;
}

/**
 * The command whose output `findLeftovers` reads, in sections. Linux: /sys and /proc;
 * FreeBSD has neither by default: `ifconfig -l` names every interface, ps(1) gives argv.
 */
export function leftoversScript(os: OsFamily = 'linux'): string {
  const net = os === 'freebsd' ? 'ifconfig -l' : 'ls /sys/class/net';
  const procs =
    os === 'freebsd'
      ? 'ps -axww -o pid=,args='
      : // argv of every process, NULs as spaces (busybox ps truncates arguments)
        'for p in /proc/[0-9]*; do a=$(tr \'\\0\' \' \' < $p/cmdline 2>/dev/null); [ -n "$a" ] && echo "${p#/proc/} $a"; done; true';
  return [`echo '@@xenstore'; xenstore-ls -f 2>&1 | cut -c1-300`, `echo '@@net'; ${net}`, `echo '@@procs'; ${procs}`].join('; ');
}

function sections(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of text.replace(/\r/g, '').split('\n')) {
    const m = /^@@(\w+)$/.exec(line);
    if (m) out.set(m[1]!, (current = []));
    else if (current && line.trim()) current.push(line.trimStart());
  }
  return out;
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export function xenstoreLeftovers(lines: readonly string[], d: DomainIdentity): string[] {
  const id = String(d.domid);
  const patterns = [
    new RegExp(`^/local/domain/${id}(/| |$)`),
    new RegExp(`^/libxl/${id}(/| |$)`),
    new RegExp(`^/local/domain/0/backend/[^/ ]+/${id}(/| |$)`),
    new RegExp(`^/local/domain/0/device-model/${id}(/| |$)`),
    ...(d.uuid ? [new RegExp(`^/vm/${escapeRe(d.uuid)}(/| |$)`)] : []),
  ];
  return lines.filter((l) => patterns.some((p) => p.test(l))).map((l) => l.replace(/ = .*$/, ''));
}

/** vif<domid>.<n> (netback; xnb<domid>.<n> on FreeBSD) and its -emu twin (HVM's emulated NIC tap). */
export function vifLeftovers(netDevs: readonly string[], d: DomainIdentity): string[] {
  return netDevs.flatMap((l) => l.split(/\s+/)).filter((n) => new RegExp(`^(?:vif|xnb)${d.domid}\\.\\d+(-emu)?$`).test(n));
}

/** qemu-dm of this domain: started with `-xen-domid <domid>`, or named after it. */
export function deviceModelLeftovers(procs: readonly string[], d: DomainIdentity): string[] {
  const byId = new RegExp(`(^| )-xen-domid ${d.domid}( |$)`);
  const byName = new RegExp(`qemu-dm-${escapeRe(d.name)}\\b`);
  return procs.filter((p) => /qemu/.test(p) && (byId.test(p) || byName.test(p)));
}

/**
 * Any other process naming the domain: the `xl create` that stays behind to watch its
 * domain and destroy it at shutdown, an `xl console`/xenconsole still attached.
 */
export function processLeftovers(procs: readonly string[], d: DomainIdentity): string[] {
  const byName = new RegExp(`(^|[ /])${escapeRe(d.name)}([ .]|$)`);
  const byCfg = d.cfgPath ? new RegExp(`(^| )${escapeRe(d.cfgPath)}( |$)`) : undefined;
  const dms = new Set(deviceModelLeftovers(procs, d));
  return procs.filter((p) => {
    const argv = p.replace(/^\d+ /, '');
    return !dms.has(p) && (byName.test(argv) || !!byCfg?.test(argv));
  });
}

export interface Leftovers {
  xenstore: string[];
  vifs: string[];
  deviceModels: string[];
  processes: string[];
}

export function findLeftovers(scriptOutput: string, d: DomainIdentity): Leftovers {
  const s = sections(scriptOutput);
  for (const name of ['xenstore', 'net', 'procs']) if (!s.has(name)) throw new Error(`leftovers script output lacks its @@${name} section`);
  // An empty section would pass as "nothing left": each must show its probe saw the live system.
  const proofs: Array<[string, RegExp, string]> = [
    ['xenstore', /^\/local\/domain\/0(?: |$)/, "dom0's own /local/domain/0 (xenstore-ls failed?)"],
    ['net', /(?:^|\s)lo0?(?:\s|$)/, 'the loopback interface'],
    ['procs', /^1 /, 'process 1'],
  ];
  for (const [name, proof, what] of proofs)
    if (!s.get(name)!.some((l) => proof.test(l)))
      throw new Error(
        `leftovers probe @@${name} did not work: its output lacks ${what}: ${JSON.stringify(s.get(name)!.slice(0, 3).join(' | ').slice(0, 200))}`,
      );
  return {
    xenstore: xenstoreLeftovers(s.get('xenstore')!, d),
    vifs: vifLeftovers(s.get('net')!, d),
    deviceModels: deviceModelLeftovers(s.get('procs')!, d),
    processes: processLeftovers(s.get('procs')!, d),
  };
}

export const isClean = (l: Leftovers) => Object.values(l).every((found) => found.length === 0);
