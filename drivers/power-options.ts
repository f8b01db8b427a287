/** The power controller kinds a host may have: IPMI, Redfish, external commands, QEMU's QMP. */
import { z } from 'zod';
import { argv, envVarName, port, secretEnv } from './config-fields.js';

export const powerOptionsSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('ipmi'),
    address: z.string().min(1),
    user: z.string().min(1),
    passwordEnv: envVarName,
    port: port.default(623),
    /** ipmitool -C: a BMC that does not answer Get Channel Cipher Suites needs it named (3 = HMAC-SHA1/AES). */
    cipherSuite: z.number().int().min(0).max(17).optional(),
    interface: z.enum(['lanplus', 'lan']).default('lanplus'),
    minOffMs: z.number().int().min(0).default(5000),
  }),
  z.strictObject({
    kind: z.literal('redfish'),
    url: z.url(),
    systemId: z.string().default('1'),
    user: z.string().min(1),
    passwordEnv: envVarName,
    /** PEM file of the BMC's CA; a BMC's self-signed certificate is pinned this way, never ignored. */
    caFile: z.string().optional(),
    minOffMs: z.number().int().min(0).default(5000),
  }),
  z.strictObject({
    kind: z.literal('command'),
    on: argv,
    off: argv,
    /** Prints on/off (case-insensitive) on stdout. */
    status: argv,
    secretEnv,
    minOffMs: z.number().int().min(0).default(5000),
  }),
  z.strictObject({
    kind: z.literal('qmp'),
    socket: z.string().min(1),
    /** Powers the VM on again after `quit` (must return once QEMU runs); without it, on() can only `cont`. */
    start: argv.optional(),
    minOffMs: z.number().int().min(0).default(0),
  }),
]);

export type PowerConfig = z.output<typeof powerOptionsSchema>;
