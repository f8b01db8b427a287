/**
 * An initramfs archive (cpio "newc", the format the kernel unpacks), written from a staging
 * directory plus entries that cannot live on the host's disk as we want them: every file
 * owned by root, and device nodes such as /dev/console (the kernel opens it before any
 * devtmpfs exists; making it with mknod in the cache would need privileges we do not want).
 */
import { createWriteStream } from 'node:fs';
import { chmod, lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';

export type CpioEntry =
  | { type: 'dir'; path: string; mode: number }
  | { type: 'file'; path: string; mode: number; data: Buffer }
  | { type: 'symlink'; path: string; target: string }
  | { type: 'char'; path: string; mode: number; major: number; minor: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

const pad4 = (n: number) => (4 - (n % 4)) % 4;
const hex8 = (n: number) => n.toString(16).padStart(8, '0');

/** One newc header + name + data, each padded to 4 bytes. Pure, so it can be unit-tested. */
export function newcRecord(ino: number, mode: number, name: string, data: Buffer, rdev: [number, number] = [0, 0]): Buffer {
  const nameBytes = Buffer.from(`${name}\0`);
  const fields = [ino, mode, 0, 0, 1, 0, data.length, 0, 0, rdev[0], rdev[1], nameBytes.length, 0];
  const header = Buffer.from(`070701${fields.map(hex8).join('')}`, 'ascii');
  const headPad = Buffer.alloc(pad4(header.length + nameBytes.length));
  return Buffer.concat([header, nameBytes, headPad, data, Buffer.alloc(pad4(data.length))]);
}

export function newcArchive(entries: readonly CpioEntry[]): Buffer {
  const parts = entries.map((e, i) => {
    const name = e.path.replace(/^\/+/, '') || '.';
    switch (e.type) {
      case 'dir':
        return newcRecord(i + 1, S_IFDIR | e.mode, name, Buffer.alloc(0));
      case 'file':
        return newcRecord(i + 1, S_IFREG | e.mode, name, e.data);
      case 'symlink':
        return newcRecord(i + 1, S_IFLNK | 0o777, name, Buffer.from(e.target));
      case 'char':
        return newcRecord(i + 1, S_IFCHR | e.mode, name, Buffer.alloc(0), [e.major, e.minor]);
    }
  });
  parts.push(newcRecord(0, 0, 'TRAILER!!!', Buffer.alloc(0)));
  return Buffer.concat(parts);
}

/** Every entry under `root`, parents before children, modes as on disk, owner root. */
export async function entriesOf(root: string): Promise<CpioEntry[]> {
  const out: CpioEntry[] = [];
  async function walk(rel: string): Promise<void> {
    const names = (await readdir(join(root, rel))).sort();
    for (const name of names) {
      const r = rel ? `${rel}/${name}` : name;
      const abs = join(root, r);
      const st = await lstat(abs);
      if (st.isSymbolicLink()) out.push({ type: 'symlink', path: r, target: await readlink(abs) });
      else if (st.isDirectory()) {
        out.push({ type: 'dir', path: r, mode: st.mode & 0o7777 });
        await walk(r);
      } else if (st.isFile()) out.push({ type: 'file', path: r, mode: st.mode & 0o7777, data: await readFile(abs) });
    }
  }
  await walk('');
  return out;
}

/** The device nodes every initramfs here carries: the kernel opens /dev/console before any /init runs. */
export const CONSOLE_AND_NULL: readonly CpioEntry[] = [
  { type: 'char', path: 'dev/console', mode: 0o600, major: 5, minor: 1 },
  { type: 'char', path: 'dev/null', mode: 0o666, major: 1, minor: 3 },
];

/** Written 0600: an initramfs may carry a guest's host private key (emu-mini, xen dom0). */
export async function writeInitramfs(root: string, extra: readonly CpioEntry[], outFile: string): Promise<number> {
  const archive = newcArchive([...(await entriesOf(root)), ...extra]);
  await new Promise<void>((resolve, reject) => {
    const ws = createWriteStream(outFile, { mode: 0o600 });
    ws.on('error', reject);
    ws.end(archive, () => resolve());
  });
  await chmod(outFile, 0o600);
  return archive.length;
}
