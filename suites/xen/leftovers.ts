/**
 * What a removed domain may leave behind in dom0, found in plain command outputs: xenstore
 * paths of its domid or uuid (its own subtree, libxl's, dom0's backends and device-model
 * nodes), vif interfaces, device-model (qemu-dm) and other processes naming it. Pure:
 * tested on recorded outputs taken while a domU ran, once it had shut down but was not yet
 * destroyed, and after it was gone.
 */

export interface DomainIdentity {
  domid: number;
  name: string;
  uuid?: string;
  /** The cfg it was created from: the `xl create` left watching it names that file. */
  cfgPath?: string;
}

/** The command whose output `findLeftovers` reads, in sections. */
export const leftoversScript = [
  "echo '@@xenstore'; xenstore-ls -f 2>&1 | cut -c1-300",
  "echo '@@net'; ls /sys/class/net",
  // argv of every process, NULs as spaces (busybox ps truncates arguments)
  "echo '@@procs'; for p in /proc/[0-9]*; do a=$(tr '\\0' ' ' < $p/cmdline 2>/dev/null); [ -n \"$a\" ] && echo \"${p#/proc/} $a\"; done; true",
].join('; ');

function sections(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of text.replace(/\r/g, '').split('\n')) {
    const m = /^@@(\w+)$/.exec(line);
    if (m) out.set(m[1]!, (current = []));
    else if (current && line.trim()) current.push(line);
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

/** vif<domid>.<n> (netback) and vif<domid>.<n>-emu (HVM's emulated NIC tap). */
export function vifLeftovers(netDevs: readonly string[], d: DomainIdentity): string[] {
  return netDevs.flatMap((l) => l.split(/\s+/)).filter((n) => new RegExp(`^vif${d.domid}\\.\\d+(-emu)?$`).test(n));
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
  for (const name of ['xenstore', 'net', 'procs'])
    if (!s.has(name)) throw new Error(`leftovers script output lacks its @@${name} section`);
  return {
    xenstore: xenstoreLeftovers(s.get('xenstore')!, d),
    vifs: vifLeftovers(s.get('net')!, d),
    deviceModels: deviceModelLeftovers(s.get('procs')!, d),
    processes: processLeftovers(s.get('procs')!, d),
  };
}

export const isClean = (l: Leftovers) => Object.values(l).every((found) => found.length === 0);
