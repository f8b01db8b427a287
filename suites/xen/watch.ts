/**
 * A watch on a console for the whole of a test: the console's death strings (Xen's `Panic on
 * CPU`, `(XEN) … FATAL`, a dom0 `Kernel panic`) fail whatever the test is doing at that
 * moment, instead of the test timing out later on something else.
 */
import type { Console } from '../../drivers/console.js';
import { ProductError } from '../../drivers/errors.js';

export interface DeathWatch {
  /** Resolves as `work` does, or rejects the moment a death string appears. */
  guard<T>(work: Promise<T>): Promise<T>;
  /** The panic seen so far, if any (for a final check after the work is done). */
  readonly died: ProductError | undefined;
  stop(): void;
}

export function watchForDeath(console: Console, what: string, timeoutMs = 60 * 60_000): DeathWatch {
  const ac = new AbortController();
  let died: ProductError | undefined;
  // A pattern that never matches: only the death strings (or the console ending) end this wait.
  const death = console.expect(/(?!)/, { from: console.received, timeoutMs, what, signal: ac.signal }).then(
    () => undefined,
    (e: unknown) => {
      if (e instanceof ProductError && e.kind === 'panic') died = e;
      return died;
    },
  );
  const deathOnly = death.then((e) => (e ? Promise.reject(e) : new Promise<never>(() => {})));
  deathOnly.catch(() => undefined);
  return {
    guard: <T>(work: Promise<T>) => Promise.race([work, deathOnly]),
    get died() {
      return died;
    },
    stop: () => ac.abort(),
  };
}
