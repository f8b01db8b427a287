/**
 * What kind of machine a host is, in one vocabulary: the lab's architecture names and OS
 * families, whatever the host's own tools call them. Pure, so the schema can use it.
 */

/** The lab's names: what Linux's `uname -m` prints on the seeds' hosts. */
export const arches = ['x86_64', 'aarch64', 'armv7l'] as const;
export type Arch = (typeof arches)[number];

/**
 * Other names of the same architectures. FreeBSD's `uname -m` prints MACHINE (amd64, arm64,
 * arm) and `uname -p` MACHINE_ARCH (amd64, aarch64, armv7) — arch(7); Debian's package
 * architectures are amd64, arm64 and armhf.
 */
const aliases: Readonly<Record<string, Arch>> = {
  x86_64: 'x86_64',
  amd64: 'x86_64',
  aarch64: 'aarch64',
  arm64: 'aarch64',
  armv7l: 'armv7l',
  armv7: 'armv7l',
  armhf: 'armv7l',
};

export const archNames = Object.keys(aliases) as [string, ...string[]];

/** The lab's name for an architecture, or undefined for one the lab does not know (`arm` alone is ambiguous). */
export function normalizeArch(raw: string): Arch | undefined {
  return aliases[raw.trim().toLowerCase()];
}

export const osFamilies = ['linux', 'freebsd'] as const;
export type OsFamily = (typeof osFamilies)[number];

/** `uname -s`: Linux or FreeBSD; anything else is not a host the lab can drive. */
export function osFamilyOf(unameS: string): OsFamily | undefined {
  const s = unameS.trim();
  if (s === 'Linux') return 'linux';
  if (s === 'FreeBSD') return 'freebsd';
  return undefined;
}
