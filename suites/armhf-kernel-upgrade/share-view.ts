/**
 * The host's view of a file in a 9p share: what it is on the host's filesystem, and what
 * QEMU's mapped-xattr model says it is to the guest. In mapped mode a guest symlink is, on
 * the host, a regular file (0600) holding the target, with `user.virtfs.mode` = S_IFLNK|0777
 * (a little-endian 32-bit mode_t; qemu hw/9pfs/9p-local.c). One command prints it all; a pure
 * parser reads it back, so the reading is unit-tested on recorded output.
 */
import { shellQuote } from '../../drivers/ssh.js';

export type HostFileType = 'regular' | 'symlink' | 'directory' | 'missing' | 'other';

export interface HostView {
  path: string;
  type: HostFileType;
  /** Permission bits as on the host (octal digits). */
  perm: string;
  owner: string;
  sizeBytes: number;
  /** A real symlink's target, and where it resolves ('' when it does not). */
  linkTarget?: string;
  resolvesTo?: string;
  /** A small regular file's content: a mapped link's target. */
  content?: string;
  /** Extended attributes, name → raw bytes (hex); undefined when no tool on the host could read them. */
  xattrs: Record<string, string> | undefined;
}

const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;
const S_IFREG = 0o100000;

// python3 reads xattrs where getfattr (package attr) is missing; both print name=0x<hex>.
const PY_XATTRS = [
  'import os, sys',
  'p = sys.argv[1]',
  'for n in os.listxattr(p, follow_symlinks=False): print("%s=0x%s" % (n, os.getxattr(p, n, follow_symlinks=False).hex()))',
].join('\n');

/** A shell command printing the view of `path` in the sections hostView() reads. */
export function hostViewCommand(path: string): string {
  const p = shellQuote(path);
  return [
    `p=${p}`,
    `if [ ! -e "$p" ] && [ ! -L "$p" ]; then echo 'stat missing'; else`,
    `echo "stat $(stat -c '%F|%a|%U|%s' -- "$p")"`,
    `if [ -L "$p" ]; then echo "link $(readlink -- "$p")"; echo "resolves $(readlink -e -- "$p")";`,
    `elif [ -f "$p" ] && [ "$(stat -c %s -- "$p")" -le 255 ]; then echo "content $(cat -- "$p")"; fi`,
    `if command -v python3 >/dev/null; then python3 -c ${shellQuote(PY_XATTRS)} "$p" | sed 's/^/xattr /';`,
    `elif command -v getfattr >/dev/null; then getfattr -h -d -m - -e hex --absolute-names -- "$p" 2>/dev/null | grep = | sed 's/^/xattr /';`,
    `else echo 'xattr-unavailable'; fi`,
    `fi`,
  ].join('\n');
}

const TYPES: Record<string, HostFileType> = {
  'regular file': 'regular',
  'regular empty file': 'regular',
  'symbolic link': 'symlink',
  directory: 'directory',
};

export function parseHostView(path: string, text: string): HostView {
  const view: HostView = { path, type: 'missing', perm: '', owner: '', sizeBytes: 0, xattrs: {} };
  for (const line of text.split('\n')) {
    const [key, ...restParts] = line.split(' ');
    const rest = restParts.join(' ');
    if (key === 'stat' && rest !== 'missing') {
      const [type, perm, owner, size] = rest.split('|');
      view.type = TYPES[type ?? ''] ?? 'other';
      view.perm = perm ?? '';
      view.owner = owner ?? '';
      view.sizeBytes = Number(size ?? 0);
    } else if (key === 'link') view.linkTarget = rest;
    else if (key === 'resolves') view.resolvesTo = rest;
    else if (key === 'content') view.content = rest;
    else if (key === 'xattr') {
      const m = /^([^=]+)=0x([0-9a-fA-F]*)$/.exec(rest);
      if (m) view.xattrs![m[1]!] = m[2]!.toLowerCase();
    } else if (key === 'xattr-unavailable') view.xattrs = undefined;
  }
  return view;
}

/** The mode QEMU's mapped model gives the guest (user.virtfs.mode), if the file has one. */
export function virtfsMode(view: HostView): number | undefined {
  const hex = view.xattrs?.['user.virtfs.mode'];
  if (!hex || hex.length < 8) return undefined;
  return Buffer.from(hex, 'hex').readUInt32LE(0);
}

/** What the guest sees: a mapped symlink, a mapped regular file, or the host's own type. */
export function guestTypeOf(view: HostView): 'symlink' | 'regular' | HostFileType {
  const mode = virtfsMode(view);
  if (mode === undefined) return view.type;
  if ((mode & S_IFMT) === S_IFLNK) return 'symlink';
  if ((mode & S_IFMT) === S_IFREG) return 'regular';
  return 'other';
}

/** A guest symlink stored the mapped way: a regular host file whose content is the target. */
export function isMappedSymlink(view: HostView): boolean {
  return view.type === 'regular' && guestTypeOf(view) === 'symlink' && !!view.content;
}

/** `vmlinuz-6.1.0-50-armmp` or `boot/vmlinuz-6.1.0-50-armmp` → `6.1.0-50-armmp`. */
export function kernelVersionOf(target: string, prefix: 'vmlinuz' | 'initrd.img' = 'vmlinuz'): string | undefined {
  const base = target.trim().split('/').pop() ?? '';
  return base.startsWith(`${prefix}-`) ? base.slice(prefix.length + 1) || undefined : undefined;
}

/** One line for a finding or a message: "regular file 600 libvirt-qemu, holds vmlinuz-…, guest sees symlink". */
export function describeView(view: HostView): string {
  if (view.type === 'missing') return 'missing';
  const what =
    view.type === 'symlink'
      ? `symlink -> ${view.linkTarget} (${view.resolvesTo ? `resolves to ${view.resolvesTo}` : 'dangling'})`
      : `${view.type} ${view.perm} ${view.owner}`;
  const holds = view.type === 'regular' && view.content !== undefined ? `, holds "${view.content}"` : '';
  const mode = virtfsMode(view);
  const mapped =
    mode !== undefined
      ? `, user.virtfs.mode ${mode.toString(8)} (guest sees ${guestTypeOf(view)})`
      : view.xattrs === undefined
        ? ', xattrs unreadable'
        : '';
  return `${what}${holds}${mapped}`;
}
