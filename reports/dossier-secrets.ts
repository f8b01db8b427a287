/**
 * The last gate before evidence leaves the lab. A lab config names its secrets only by env-var
 * (`identityEnv`, `passwordEnv`, `secretEnv`, … — targets/schema.ts), so lab.json holds no secret
 * by construction; this checks that it stayed so, and that no log or attachment picked one up:
 * no private key, and no value of an env var a `*Env` field names — raw, JSON- or XML-escaped,
 * or as UTF-8 bytes (targets/secrets.ts). Findings never print the value.
 */
import { MIN_SCANNABLE_SECRET, type NamedSecret, secretEnvNames, secretMatcher, secretsOf } from '../targets/secrets.js';

export { MIN_SCANNABLE_SECRET, type NamedSecret, secretsOf };
export const envNamesIn = secretEnvNames;

export interface SecretHit {
  file: string;
  what: string;
}

/** `text` is a file read as latin1 (byte for byte) or a decoded string: both are matched. */
export function findSecrets(text: string, file: string, secrets: NamedSecret[]): SecretHit[] {
  return secretMatcher(secrets)
    .find(text)
    .map((what) => ({ file, what: what.startsWith('$') ? `the value of ${what}` : what }));
}
