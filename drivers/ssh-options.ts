/** How the SSH driver reaches a host: address, user, identity (named, never written), the pinned host key. */
import { z } from 'zod';
import { envVarName, port } from './config-fields.js';

export const sshOptionsSchema = z.strictObject({
  address: z.string().min(1),
  port: port.default(22),
  user: z.string().min(1).default('root'),
  /** Path of a private key file (a path is not a secret; the file must not be in the repo). */
  identityFile: z.string().min(1).optional(),
  /** Name of an env var holding the private key itself (CI secrets). */
  identityEnv: envVarName.optional(),
  passwordEnv: envVarName.optional(),
  /** Pinned host key, as `ssh-keygen -lf` prints it: SHA256:<base64, 43 chars>. */
  hostKey: z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}$/, 'a pinned host-key fingerprint "SHA256:…" (ssh-keygen -lf)'),
  /** sshd MaxSessions: channels open at once on one connection. */
  maxChannels: z.number().int().min(1).max(64).default(10),
  keepaliveMs: z.number().int().positive().default(10_000),
  connectTimeoutMs: z.number().int().min(100).default(15_000),
});

export type SshConfig = z.output<typeof sshOptionsSchema>;
