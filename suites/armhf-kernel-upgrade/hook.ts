/**
 * The libvirt qemu hook of seed 000, and what it writes. A guest whose /boot is a 9p share in
 * mapped mode stores its `vmlinuz` symlink on the host as a regular file holding the target;
 * before QEMU starts (`prepare begin`) the hook turns that into real host symlinks
 * `virtio-vmlinuz` / `virtio-initrd.img`, which the domain boots. libvirt calls
 * `qemu <domain> <operation> <sub-operation> <extra>` with the domain XML on stdin, and a hook
 * must never call back into libvirt (libvirtd waits for the hook: that would deadlock).
 */

/** First line after the shebang: how the suite recognises its own hook (a crashed run's leftover). */
export const HOOK_SIGNATURE = '# labrig boot-share hook (seed 000)';

export interface BootHookOptions {
  /** Each domain's share is `<shareRoot>/<domain>-boot` (the seed: /srv). */
  shareRoot: string;
  /** One line per `prepare begin` of a domain with a share: what the hook did. */
  logFile: string;
  /** The hook that was there before: run after ours, with the same arguments and stdin. */
  chainTo?: string;
}

/** The (guest link, host link) pairs: the guest's names as the kernel package makes them. */
export const BOOT_LINKS = [
  ['vmlinuz', 'virtio-vmlinuz'],
  ['initrd.img', 'virtio-initrd.img'],
] as const;

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export function bootShareHook(o: BootHookOptions): string {
  const links = BOOT_LINKS.map(([guest, host]) => `  point ${guest} ${host}`).join('\n');
  return `#!/bin/sh
${HOOK_SIGNATURE}
# On "prepare begin" of a domain with a boot share, point virtio-vmlinuz and virtio-initrd.img at
# what the guest's /boot/vmlinuz and /boot/initrd.img name. Uses only the share: never libvirt.
share_root=${q(o.shareRoot)}
log=${q(o.logFile)}
chain=${q(o.chainTo ?? '')}
vm="$1"
bootdir="$share_root/$vm-boot"
done_links=''

say() { printf '%s hook vm=%s %s\\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$vm" "$*" >> "$log" 2>/dev/null || true; }
fail() { say "error=\\"$*\\""; echo "boot-share hook: $vm: $*" >&2; exit 1; }

# The target the guest gave a link: mapped mode stores it as a small regular file holding the
# target; a passthrough share keeps a real symlink. A file larger than a name is not a link.
target_of() {
  if [ -L "$1" ]; then readlink "$1"
  elif [ -f "$1" ] && [ "$(wc -c < "$1")" -le 255 ]; then cat "$1"
  fi
}

# point <guest link> <host link>: idempotent; the new link replaces the old by rename, so a
# start racing this never sees the name missing.
point() {
  t="$(target_of "$bootdir/$1")"
  [ -n "$t" ] || fail "$1 in $bootdir is neither a mapped link nor a symlink"
  # vmlinuz-<v> (links in /boot) or boot/vmlinuz-<v> (links in /): the file is in the share either way
  t="\${t##*/}"
  case "$t" in ''|.|..|*[!A-Za-z0-9._+-]*) fail "$1 names '$t', which is not a file name";; esac
  [ -f "$bootdir/$t" ] || fail "$1 names $t, which is not in $bootdir"
  if [ "$(readlink "$bootdir/$2" 2>/dev/null)" = "$t" ]; then
    done_links="$done_links $2=$t:kept"
    return
  fi
  ln -sfn "$t" "$bootdir/.$2.new" && mv -Tf "$bootdir/.$2.new" "$bootdir/$2" || fail "cannot link $2 -> $t"
  done_links="$done_links $2=$t:changed"
}

if [ "$2" = prepare ] && [ "$3" = begin ] && [ -d "$bootdir" ]; then
  if [ ! -e "$bootdir/vmlinuz" ] && [ ! -L "$bootdir/vmlinuz" ]; then
    # No kernel installed in the share yet (the guest's first, installer boot): nothing to point at.
    say "no-kernel-link"
  else
${links}
    say "$done_links"
  fi
fi
[ -z "$chain" ] || exec "$chain" "$@"
exit 0
`;
}

export interface HookLogEntry {
  at: string;
  vm: string;
  /** Host link → target and whether this run changed it. */
  links: Array<{ link: string; target: string; changed: boolean }>;
  noKernelLink: boolean;
  error: string | undefined;
}

/** The hook's log lines for one domain, oldest first (other domains' lines are skipped). */
export function parseHookLog(text: string, vm: string): HookLogEntry[] {
  const out: HookLogEntry[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\S+) hook vm=(\S+) ?(.*)$/.exec(line.trim());
    if (!m || m[2] !== vm) continue;
    const rest = m[3] ?? '';
    const error = /^error="(.*)"$/.exec(rest)?.[1];
    const links = [...rest.matchAll(/(\S+)=([^\s:]+):(kept|changed)/g)].map((l) => ({
      link: l[1]!,
      target: l[2]!,
      changed: l[3] === 'changed',
    }));
    out.push({ at: m[1]!, vm: m[2]!, links, noKernelLink: rest === 'no-kernel-link', error });
  }
  return out;
}
