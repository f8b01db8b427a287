import { expect, test } from '@playwright/test';
import { bisectCeiling, ceilingFinding, type Probe } from '../suites/pcie-root-ports/bisect.js';

const oracle = (boots: (n: number) => boolean): Probe & { calls: number[] } => {
  const calls: number[] = [];
  const p = (async (n: number) => {
    calls.push(n);
    const ok = boots(n);
    return { ok, outcome: ok ? 'booted' : 'device-missing', reason: '', seconds: 1 };
  }) as Probe & { calls: number[] };
  p.calls = calls;
  return p;
};

test('finds the seed ceiling of 15 in 1..28 within ceil(log2(28)) + 2 = 7 boots', async () => {
  const p = oracle((n) => n <= 15);
  const r = await bisectCeiling(1, 28, p);
  expect(r.verdict).toEqual({ kind: 'ceiling', ceiling: 15 });
  expect(p.calls.length).toBeLessThanOrEqual(7);
  expect(p.calls.slice(-2)).toEqual([15, 16]);
  expect(ceilingFinding(r.verdict)).toBe(15);
});

test('every ceiling from 1 to 28 is found, always within 7 boots', async () => {
  for (let c = 1; c <= 28; c++) {
    const p = oracle((n) => n <= c);
    const r = await bisectCeiling(1, 28, p);
    expect(r.verdict, `ceiling ${c}`).toEqual(c === 28 ? { kind: 'none-below-upper-bound', upper: 28 } : { kind: 'ceiling', ceiling: c });
    expect(p.calls.length, `ceiling ${c}`).toBeLessThanOrEqual(7);
  }
});

test('when even the upper bound boots, there is no ceiling below it', async () => {
  const r = await bisectCeiling(
    1,
    28,
    oracle(() => true),
  );
  expect(ceilingFinding(r.verdict)).toBe('none-below-28');
});

test('when not even the lower bound boots, it says so', async () => {
  const r = await bisectCeiling(
    1,
    28,
    oracle(() => false),
  );
  expect(r.verdict).toEqual({ kind: 'nothing-boots', lower: 1 });
  expect(ceilingFinding(r.verdict)).toBe('none-boots-at-1');
});

test('a flaky boundary (the repeat changes its answer) is reported as non-monotonic', async () => {
  let seen16 = 0;
  const r = await bisectCeiling(
    1,
    28,
    oracle((n) => n <= 15 || (n === 16 && seen16++ === 1)),
  );
  expect(r.verdict.kind).toBe('non-monotonic');
  expect(r.verdict.kind === 'non-monotonic' && r.verdict.contradictions.join('\n')).toMatch(/N=16 gave device-missing then booted/);
});

test('a non-monotonic oracle: the search alone finds a boundary; a spot check in the gap exposes it', async () => {
  // Boots up to 10 and again at 14 (a firmware quirk), nowhere else. The search probes 14, 21,
  // 17, 15 and the boundary pair 14/15: every answer agrees with "ceiling 14" — a bisection
  // cannot see a gap it never probes, and says only what it saw.
  const quirky = (n: number) => n <= 10 || n === 14;
  const alone = await bisectCeiling(1, 28, oracle(quirky));
  expect(alone.verdict).toEqual({ kind: 'ceiling', ceiling: 14 });
  const checked = await bisectCeiling(1, 28, oracle(quirky), { spotChecks: [12] });
  expect(checked.verdict.kind).toBe('non-monotonic');
  expect(checked.verdict.kind === 'non-monotonic' && checked.verdict.contradictions).toContain(
    'N=14 booted but N=12 did not (device-missing: )',
  );
  expect(ceilingFinding(checked.verdict)).toBe('non-monotonic-near-14');
});

test('bounds are checked', async () => {
  await expect(
    bisectCeiling(
      0,
      28,
      oracle(() => true),
    ),
  ).rejects.toThrow('bad bounds');
  await expect(
    bisectCeiling(
      5,
      4,
      oracle(() => true),
    ),
  ).rejects.toThrow('bad bounds');
});

/** A probe on a slow lab: N times out on its first `timeouts[N]` tries, then answers as `boots` says. */
const slowLab = (boots: (n: number) => boolean, timeouts: Record<number, number>): Probe & { calls: number[] } => {
  const calls: number[] = [];
  const p = (async (n: number) => {
    calls.push(n);
    if (calls.filter((c) => c === n).length <= (timeouts[n] ?? 0))
      return { ok: false, unknown: true, outcome: 'timeout', reason: 'kernel started but gave no verdict within 1000 ms', seconds: 1 };
    const ok = boots(n);
    return { ok, outcome: ok ? 'booted' : 'device-missing', reason: '', seconds: 1 };
  }) as Probe & { calls: number[] };
  p.calls = calls;
  return p;
};

test('a probe that timed out is re-probed: two timeouts at the boundary do not lower the ceiling of 15', async () => {
  // 15 is probed in the search (…, 14, 15) and again to confirm: both first tries time out.
  const p = slowLab((n) => n <= 15, { 15: 2, 21: 1 });
  const r = await bisectCeiling(1, 28, p);
  expect(r.verdict).toEqual({ kind: 'ceiling', ceiling: 15 });
  expect(p.calls.filter((n) => n === 15).length).toBe(4);
  expect(r.probes.filter((x) => x.unknown).map((x) => x.n)).toEqual([21, 15, 15]);
  expect(ceilingFinding(r.verdict)).toBe(15);
});

test('a probe still unknown after 2 re-probes: the ceiling is not determined there, never lower', async () => {
  const p = slowLab((n) => n <= 15, { 15: 3 });
  const r = await bisectCeiling(1, 28, p);
  expect(r.verdict).toEqual({
    kind: 'undetermined',
    at: 15,
    tries: 3,
    atLeast: 14,
    reason: 'timeout: kernel started but gave no verdict within 1000 ms',
  });
  expect(p.calls.slice(-3)).toEqual([15, 15, 15]);
  expect(ceilingFinding(r.verdict)).toBe('undetermined-at-15');
});

test('timeouts alone are never a contradiction, and the re-probe count is a setting', async () => {
  // The search probes 14 (boots), then 21: one timeout there, and no re-probe allowed.
  const none = await bisectCeiling(
    1,
    28,
    slowLab((n) => n <= 15, { 21: 1 }),
    { reprobes: 0 },
  );
  expect(none.verdict).toMatchObject({ kind: 'undetermined', at: 21, tries: 1, atLeast: 14 });
  // The very first probe stays unknown: nothing is known, and nothing is claimed.
  const first = await bisectCeiling(
    1,
    28,
    slowLab(() => true, { 14: 5 }),
  );
  expect(first.verdict).toMatchObject({ kind: 'undetermined', at: 14, tries: 3, atLeast: null });
  expect(first.probes.every((x) => x.unknown)).toBe(true);
});
