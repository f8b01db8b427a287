/**
 * Which kernels a host has installed, under each distribution's naming: Debian's
 * vmlinuz-<ver> + initrd.img-<ver>, RHEL's vmlinuz-<ver> + initramfs-<ver>.img (and a rescue
 * copy, vmlinuz-0-rescue-<machine id>, that no `uname -r` names), Arch's vmlinuz-<pkgbase> +
 * initramfs-<pkgbase>.img whose version only /usr/lib/modules/<ver>/pkgbase tells. Pure.
 */

export interface InstalledKernel {
  /** As `uname -r` prints it. */
  version: string;
  image: string;
  initrd?: string;
}

/** Prints `ls -1 /boot`, then `<version> <pkgbase>` for each Arch kernel package (none elsewhere). */
export const KERNEL_LISTING_SCRIPT = [
  "echo '@@boot'; ls -1 /boot",
  'echo \'@@pkgbase\'; for f in /usr/lib/modules/*/pkgbase; do [ -r "$f" ] && d=${f%/pkgbase} && echo "${d##*/} $(head -n1 "$f")"; done; true',
].join('; ');

function sections(text: string): { boot: string[]; pkgbase: string[] } {
  if (!/^@@boot$/m.test(text)) return { boot: text.split('\n'), pkgbase: [] };
  const out = { boot: [] as string[], pkgbase: [] as string[] };
  let current: string[] | undefined;
  for (const line of text.split('\n')) {
    const m = /^@@(boot|pkgbase)$/.exec(line.trim());
    if (m) current = out[m[1] as 'boot' | 'pkgbase'];
    else current?.push(line);
  }
  return out;
}

/**
 * Kernels in KERNEL_LISTING_SCRIPT's output, or in a plain `ls -1 /boot`. A name that is not a
 * version (it does not start with a digit) is an Arch pkgbase: without its modules' pkgbase
 * file nothing says which `uname -r` it boots, so it is left out rather than guessed.
 */
export function installedKernels(listing: string, bootDir = '/boot'): InstalledKernel[] {
  const { boot, pkgbase } = sections(listing);
  const names = boot.map((l) => l.trim()).filter(Boolean);
  const has = (n: string) => names.includes(n);
  const versionsOf = new Map<string, string[]>();
  for (const line of pkgbase) {
    const m = /^(\S+) (\S+)$/.exec(line.trim());
    if (m) versionsOf.set(m[2]!, [...(versionsOf.get(m[2]!) ?? []), m[1]!]);
  }
  const kernels: InstalledKernel[] = [];
  for (const name of names.filter((n) => /^vmlinuz-.+/.test(n)).map((n) => n.slice('vmlinuz-'.length))) {
    if (name.startsWith('0-rescue-')) continue;
    const initrd = [`initrd.img-${name}`, `initramfs-${name}.img`].find(has);
    const entry = (version: string): InstalledKernel => ({
      version,
      image: `${bootDir}/vmlinuz-${name}`,
      ...(initrd ? { initrd: `${bootDir}/${initrd}` } : {}),
    });
    if (/^\d/.test(name)) kernels.push(entry(name));
    // /boot holds one image per pkgbase: the newest modules directory is the one it boots
    else if (versionsOf.has(name)) kernels.push(entry(versionsOf.get(name)!.sort().at(-1)!));
  }
  return kernels.sort((a, b) => (a.version < b.version ? -1 : a.version > b.version ? 1 : 0));
}
