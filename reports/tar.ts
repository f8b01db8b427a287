/**
 * Reads a .tar.gz in memory: the dossier verifier looks at what a vendor received without
 * unpacking it anywhere (no path traversal, no symlinks followed). Understands ustar, GNU
 * long names ('L') and pax path records ('x'), which is what GNU tar and bsdtar write.
 */
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';

export interface TarEntry {
  name: string;
  /** 'file' for regular files; anything else (symlink, device, …) is named by its type flag. */
  kind: 'file' | 'directory' | 'other';
  typeflag: string;
  data: Buffer;
}

const BLOCK = 512;

function field(header: Buffer, offset: number, length: number): string {
  const raw = header.subarray(offset, offset + length);
  const end = raw.indexOf(0);
  return raw.subarray(0, end === -1 ? length : end).toString('utf8');
}

function octal(header: Buffer, offset: number, length: number, what: string): number {
  const text = field(header, offset, length).trim();
  if (!/^[0-7]*$/.test(text)) throw new Error(`tar header field ${what} is not octal: "${text}"`);
  return text ? parseInt(text, 8) : 0;
}

function checksumOk(header: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : header[i]!;
  return sum === octal(header, 148, 8, 'chksum');
}

/** pax records: "<len> <key>=<value>\n" … */
function paxPath(data: Buffer): string | undefined {
  let at = 0;
  let path: string | undefined;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    if (space === -1) break;
    const len = Number(data.subarray(at, space).toString('ascii'));
    if (!Number.isInteger(len) || len <= 0) break;
    const record = data.subarray(space + 1, at + len - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (record.slice(0, eq) === 'path') path = record.slice(eq + 1);
    at += len;
  }
  return path;
}

export function parseTar(tar: Buffer): TarEntry[] {
  const entries: TarEntry[] = [];
  let at = 0;
  let longName: string | undefined;
  while (at + BLOCK <= tar.length) {
    const header = tar.subarray(at, at + BLOCK);
    if (header.every((b) => b === 0)) break;
    if (!checksumOk(header)) throw new Error(`tar header at byte ${at} has a wrong checksum`);
    const size = octal(header, 124, 12, 'size');
    const typeflag = field(header, 156, 1) || '0';
    const data = tar.subarray(at + BLOCK, at + BLOCK + size);
    if (data.length !== size) throw new Error(`tar entry at byte ${at} is cut short`);
    at += BLOCK + Math.ceil(size / BLOCK) * BLOCK;
    if (typeflag === 'L') {
      longName = field(data, 0, data.length);
      continue;
    }
    if (typeflag === 'x') {
      longName = paxPath(data) ?? longName;
      continue;
    }
    if (typeflag === 'g') continue;
    const prefix = field(header, 257, 6).startsWith('ustar') ? field(header, 345, 155) : '';
    const name = longName ?? (prefix ? `${prefix}/${field(header, 0, 100)}` : field(header, 0, 100));
    longName = undefined;
    const kind = typeflag === '0' || typeflag === '7' ? 'file' : typeflag === '5' ? 'directory' : 'other';
    entries.push({ name: name.replace(/^\.\//, ''), kind, typeflag, data: Buffer.from(data) });
  }
  return entries;
}

export async function readTarGz(path: string): Promise<TarEntry[]> {
  let tar: Buffer;
  try {
    tar = gunzipSync(await readFile(path));
  } catch (e) {
    throw new Error(`${path} is not a readable .tar.gz: ${(e as Error).message}`, { cause: e });
  }
  return parseTar(tar);
}
