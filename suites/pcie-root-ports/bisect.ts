/**
 * Finds the largest N in [lower, upper] for which a probe succeeds, one boot per probe, on the
 * assumption that success is monotonic (boots up to a ceiling, fails above). The search runs
 * between the sentinels lower-1 (assumed good) and upper+1 (assumed bad), so it needs
 * ceil(log2(upper-lower+2)) probes; then the boundary pair is probed again to confirm it.
 * Every probe is kept; a contradiction among them is reported, never hidden. A probe whose
 * boot wait timed out (a slow lab) is "unknown", not "fails": it is probed again, and if it
 * stays unknown the search stops there and says the ceiling is not determined, never lower.
 */
export interface ProbeResult {
  n: number;
  ok: boolean;
  /** The boot wait timed out: this probe says neither "boots" nor "fails". */
  unknown?: boolean;
  outcome: string;
  reason: string;
  seconds: number;
}

export type Verdict =
  /** The largest N that boots; N+1 does not. */
  | { kind: 'ceiling'; ceiling: number }
  /** Even the upper bound boots. */
  | { kind: 'none-below-upper-bound'; upper: number }
  /** Not even the lower bound boots. */
  | { kind: 'nothing-boots'; lower: number }
  /** The probes contradict each other (a repeat changed its answer, or a larger N booted while a smaller did not). */
  | { kind: 'non-monotonic'; contradictions: string[]; ceiling: number | null }
  /** N stayed unknown (timed out) on every try: the ceiling is at least `atLeast` (null: nothing known) and not determined. */
  | { kind: 'undetermined'; at: number; tries: number; atLeast: number | null; reason: string };

export interface Bisection {
  verdict: Verdict;
  probes: ProbeResult[];
}

export type Probe = (n: number) => Promise<Omit<ProbeResult, 'n'>>;

export function contradictions(all: readonly ProbeResult[]): string[] {
  // An unknown probe said nothing, so it contradicts nothing.
  const probes = all.filter((p) => !p.unknown);
  const out: string[] = [];
  const byN = new Map<number, ProbeResult[]>();
  for (const p of probes) byN.set(p.n, [...(byN.get(p.n) ?? []), p]);
  for (const [n, ps] of byN) if (new Set(ps.map((p) => p.ok)).size > 1) out.push(`N=${n} gave ${ps.map((p) => p.outcome).join(' then ')}`);
  const goods = probes.filter((p) => p.ok);
  const bads = probes.filter((p) => !p.ok);
  for (const g of goods) for (const b of bads) if (g.n > b.n) out.push(`N=${g.n} booted but N=${b.n} did not (${b.outcome}: ${b.reason})`);
  return [...new Set(out)];
}

export interface BisectOptions {
  /** Probe the boundary pair again (default true). */
  confirm?: boolean;
  /** Extra N to probe after the search: a bisection alone cannot see a gap it never probes. */
  spotChecks?: readonly number[];
  /** How many more times a probe that timed out is tried before the ceiling is called undetermined (default 2). */
  reprobes?: number;
}

/** Stops the search: N stayed unknown after every re-probe. */
class Undetermined extends Error {
  constructor(
    readonly at: number,
    readonly tries: number,
    readonly reason: string,
  ) {
    super(`N=${at} unknown after ${tries} tries: ${reason}`);
  }
}

export async function bisectCeiling(lower: number, upper: number, probe: Probe, opts: BisectOptions = {}): Promise<Bisection> {
  if (!Number.isInteger(lower) || !Number.isInteger(upper) || lower < 1 || upper < lower) throw new Error(`bad bounds ${lower}..${upper}`);
  const probes: ProbeResult[] = [];
  const tries = 1 + (opts.reprobes ?? 2);
  const run = async (n: number) => {
    for (let i = 1; ; i++) {
      const r = { n, ...(await probe(n)) };
      probes.push(r);
      if (!r.unknown) return r.ok;
      if (i >= tries) throw new Undetermined(n, i, `${r.outcome}: ${r.reason}`);
    }
  };
  let good = lower - 1;
  let bad = upper + 1;
  try {
    while (bad - good > 1) {
      const mid = Math.floor((good + bad) / 2);
      if (await run(mid)) good = mid;
      else bad = mid;
    }
    if (opts.confirm ?? true) {
      if (good >= lower) await run(good);
      if (bad <= upper) await run(bad);
    }
    for (const n of opts.spotChecks ?? []) if (n >= lower && n <= upper) await run(n);
  } catch (e) {
    if (!(e instanceof Undetermined)) throw e;
    const atLeast = good >= lower ? good : null;
    return { probes, verdict: { kind: 'undetermined', at: e.at, tries: e.tries, atLeast, reason: e.reason } };
  }
  const found = contradictions(probes);
  if (found.length) return { probes, verdict: { kind: 'non-monotonic', contradictions: found, ceiling: good >= lower ? good : null } };
  if (good === upper) return { probes, verdict: { kind: 'none-below-upper-bound', upper } };
  if (good < lower) return { probes, verdict: { kind: 'nothing-boots', lower } };
  return { probes, verdict: { kind: 'ceiling', ceiling: good } };
}

/** The finding value: the ceiling, or words that say why there is none. */
export function ceilingFinding(v: Verdict): string | number {
  switch (v.kind) {
    case 'ceiling':
      return v.ceiling;
    case 'none-below-upper-bound':
      return `none-below-${v.upper}`;
    case 'nothing-boots':
      return `none-boots-at-${v.lower}`;
    case 'non-monotonic':
      return `non-monotonic${v.ceiling === null ? '' : `-near-${v.ceiling}`}`;
    case 'undetermined':
      return `undetermined-at-${v.at}`;
  }
}
