/**
 * Two families of failure. A LabError means the lab could not do its job (host unreachable,
 * console busy, lease held, host did not come back): the product was not tested. A
 * ProductError means the thing under test misbehaved (guest did not boot, kernel panic).
 * The bracketed prefix in the message is what reports/allurerc.mjs matches into categories.
 */
export type LabErrorKind =
  | 'config'
  | 'unreachable'
  | 'host-key'
  | 'console-busy'
  | 'lease-held'
  | 'lease-lost'
  | 'did-not-return'
  | 'lab-timeout'
  | 'lab-setup'
  | 'quarantined'
  /** A console wait timed out and not one byte ever arrived: dead ser2net, a socket another client holds. */
  | 'console-silent'
  /** A tool the harness runs on the runner (ipmitool, a power command, the QEMU start command) failed or hung. */
  | 'runner-tool';

export type ProductErrorKind = 'panic' | 'did-not-boot' | 'command-failed' | 'timeout' | 'mismatch';

export interface ErrorContext {
  host?: string;
  step?: string;
  /** Path of the full log that holds the evidence. */
  evidence?: string;
  /** Last lines of the console or output, already redacted. */
  tail?: string;
}

function compose(prefix: string, message: string, ctx: ErrorContext): string {
  const where = [ctx.host && `host ${ctx.host}`, ctx.step && `step "${ctx.step}"`].filter(Boolean).join(', ');
  let text = `${prefix} ${where ? `${where}: ` : ''}${message}`;
  if (ctx.evidence) text += `\n  full log: ${ctx.evidence}`;
  if (ctx.tail) text += `\n  last lines:\n${ctx.tail.replace(/^/gm, '    | ')}`;
  return text;
}

export class LabError extends Error {
  override readonly name = 'LabError';
  constructor(
    readonly kind: LabErrorKind,
    message: string,
    readonly context: ErrorContext = {},
    options?: { cause?: unknown },
  ) {
    super(compose(`[lab:${kind}]`, message, context), options);
  }
}

export class ProductError extends Error {
  override readonly name = 'ProductError';
  constructor(
    readonly kind: ProductErrorKind,
    message: string,
    readonly context: ErrorContext = {},
    options?: { cause?: unknown },
  ) {
    super(compose(`[product:${kind}]`, message, context), options);
  }
}

export function isLabError(e: unknown): e is LabError {
  return e instanceof LabError || (e instanceof Error && e.message.startsWith('[lab:'));
}
