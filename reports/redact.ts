/**
 * Redaction of a run's output folder after the run: whatever reached a file unredacted — a
 * console log written byte for byte from the moment the console opened, junit.xml, the Allure
 * results (test errors with their console tails, the worker's stdout/stderr attachments, what a
 * suite attached itself), quarantine and attempt records — has the lab's secrets replaced by ***
 * in place, before anything is hashed, reported or archived. Binary media are left alone.
 */
import { lstat, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type NamedSecret, type SecretMatcher, secretMatcher, secretsOf } from '../targets/secrets.js';

export interface RedactedTree {
  /** Files read. */
  scanned: number;
  /** Files that held a secret and were rewritten. */
  redacted: string[];
  /** Files left as they are, with the reason (too large to rewrite in memory). */
  skipped: string[];
}

/** Compressed or encoded media: a byte-wise match there would be chance, and rewriting would break the file. */
export const BINARY_FILE = /\.(?:png|jpe?g|gif|webp|webm|mp4|zip|gz|tgz|xz|zst|br|woff2?|ico|pdf|img|qcow2)$/i;
const MAX_FILE_BYTES = 1024 * 2 ** 20;

async function redactFile(path: string, matcher: SecretMatcher, out: RedactedTree): Promise<void> {
  const st = await lstat(path);
  if (!st.isFile()) return;
  if (st.size > MAX_FILE_BYTES) return void out.skipped.push(`${path} (${st.size} bytes: larger than ${MAX_FILE_BYTES})`);
  const data = await readFile(path);
  out.scanned++;
  const clean = matcher.redactBytes(data);
  if (clean === data) return;
  const tmp = `${path}.redact-${process.pid}`;
  await writeFile(tmp, clean, { mode: st.mode & 0o777 });
  await rename(tmp, path);
  out.redacted.push(path);
}

/** Every regular file under `roots` (symbolic links are not followed), secrets replaced in place. */
export async function redactTree(roots: readonly string[], secrets: readonly NamedSecret[]): Promise<RedactedTree> {
  const out: RedactedTree = { scanned: 0, redacted: [], skipped: [] };
  const matcher = secretMatcher(secrets);
  for (const root of roots) {
    const top = await lstat(root).catch(() => undefined);
    if (!top) continue;
    if (top.isFile()) {
      if (!BINARY_FILE.test(root)) await redactFile(root, matcher, out);
      continue;
    }
    if (!top.isDirectory()) continue;
    for (const e of await readdir(root, { recursive: true, withFileTypes: true })) {
      if (e.isFile() && !BINARY_FILE.test(e.name)) await redactFile(join(e.parentPath, e.name), matcher, out);
    }
  }
  return out;
}

/**
 * The lab's secrets (every `*Env` the config names, as `env` holds them; any PEM private key)
 * replaced in every file under `dirs`. Call it once the tests have ended, before the report.
 */
export async function redactRunOutput(opts: { dirs: readonly string[]; config: unknown; env?: NodeJS.ProcessEnv }): Promise<RedactedTree> {
  return redactTree(opts.dirs, secretsOf(opts.config, opts.env ?? process.env).secrets);
}
