/** The console kinds a host may have (serial, TCP/telnet, unix socket, a command, IPMI SOL), each strict, and its login. */
import { z } from 'zod';
import { argv, envVarName, port, secretEnv } from './config-fields.js';

/** A root or user prompt, possibly followed by terminal queries (busybox's line editor asks ESC[6n). */
export const DEFAULT_PROMPT = '[#$] ?(?:\\x1b\\[[0-9;?]*[A-Za-z])*$';

const loginSchema = z.strictObject({
  user: z.string().min(1).default('root'),
  passwordEnv: envVarName.optional(),
  /** Regex source of the shell prompt seen before normalisation. */
  prompt: z.string().default(DEFAULT_PROMPT),
});

/** Each kind is strict with its login: a typo (`buad`, `telent`) is an error, never a silently ignored key. */
const login = loginSchema.optional();
export const consoleOptionsSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('serial'), path: z.string().min(1), baud: z.number().int().positive().default(115200), login }),
  z.strictObject({ kind: z.literal('tcp'), address: z.string().min(1), port, telnet: z.boolean().default(false), login }),
  z.strictObject({ kind: z.literal('unix'), path: z.string().min(1), login }),
  /** A command whose stdio is the console: ipmitool sol activate (on the runner), virsh/xl console (over SSH). */
  z.strictObject({ kind: z.literal('command'), argv, on: z.enum(['runner', 'ssh']).default('runner'), secretEnv, login }),
  /** IPMI Serial-over-LAN through `ipmitool -I lanplus … sol activate` on the runner. */
  z.strictObject({
    kind: z.literal('ipmi-sol'),
    address: z.string().min(1),
    port: port.default(623),
    user: z.string().min(1),
    passwordEnv: envVarName,
    /** ipmitool -C: a BMC that does not answer Get Channel Cipher Suites needs it named (3 = HMAC-SHA1/AES). */
    cipherSuite: z.number().int().min(0).max(17).optional(),
    /** A session already holding the SOL payload is ended (`sol deactivate`) and the console taken; else console-busy. */
    takeOver: z.boolean().default(false),
    login,
  }),
]);

export type ConsoleConfig = z.output<typeof consoleOptionsSchema>;
