/**
 * Outputs recorded on systems we cannot run here (FreeBSD, Arch, RHEL), each file opening with
 * `#` lines that name its source and a `---` line; the output is what follows, untouched.
 */
import { readFileSync } from 'node:fs';

export function recordedOutput(path: string): string {
  const text = readFileSync(new URL(`../recorded/${path}`, import.meta.url), 'utf8');
  const at = text.indexOf('\n---\n');
  if (!text.startsWith('# RECORDED') || at < 0)
    throw new Error(`${path}: a recorded fixture opens with "# RECORDED …" source lines and a "---" line`);
  return text.slice(at + '\n---\n'.length);
}
