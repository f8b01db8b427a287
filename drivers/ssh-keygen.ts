/**
 * OpenSSH's ssh-keygen on the runner: key pairs made once, and their SHA256 fingerprints.
 */
import { access } from 'node:fs/promises';
import { runLocal } from './local.js';

export async function fingerprintOf(publicKeyFile: string): Promise<string> {
  const { stdout } = await runLocal(['ssh-keygen', '-lf', publicKeyFile]);
  const fp = stdout.split(/\s+/)[1];
  if (!fp?.startsWith('SHA256:')) throw new Error(`ssh-keygen -lf ${publicKeyFile} printed no fingerprint: ${stdout}`);
  return fp;
}

export async function ensureKeyPair(path: string, comment: string): Promise<void> {
  if (
    await access(path).then(
      () => true,
      () => false,
    )
  )
    return;
  await runLocal(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path]);
}
