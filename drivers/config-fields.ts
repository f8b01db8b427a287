/**
 * Field types the drivers' options share (and the lab schema, which composes them): an
 * environment variable NAME where a secret is meant, a TCP port, an argv.
 */
import { z } from 'zod';

/** Secrets never appear in a config: only the NAME of the environment variable holding them. */
export const envVarName = z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'an environment variable NAME (A-Z, 0-9, _), not a secret');
export const port = z.number().int().min(1).max(65535);
export const argv = z.array(z.string().min(1)).min(1);
/** Env-var names of the secrets a `command` console or power command reads from its environment: masked wherever they show. */
export const secretEnv = z.array(envVarName).optional();
