/**
 * Power control: one interface, one implementation per controller kind of the lab config
 * (ipmitool, Redfish, an external command, QEMU's QMP for emulated hosts). Secrets come
 * from the environment variable the config names and never reach an argv or a log.
 */
import { readFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { LabError } from './errors.js';
import { ipmiEnv, ipmitoolBase } from './ipmi.js';
import { runLocal } from './local.js';
import type { PowerConfig } from './power-options.js';
import { Qmp } from './qmp.js';
import { type Recorder, silentRecorder } from './recorder.js';

export type PowerState = 'on' | 'off' | 'unknown';

export interface PowerController {
  on(): Promise<void>;
  off(): Promise<void>;
  cycle(): Promise<void>;
  status(): Promise<PowerState>;
}

export interface PowerOptions {
  /** Names the host in steps and errors. */
  host?: string;
  /** Where secrets are looked up (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** How long on()/off() wait for the status to follow (default 60 s). */
  settleMs?: number;
}

type IpmiConfig = Extract<PowerConfig, { kind: 'ipmi' }>;
type RedfishConfig = Extract<PowerConfig, { kind: 'redfish' }>;
type CommandConfig = Extract<PowerConfig, { kind: 'command' }>;
type QmpConfig = Extract<PowerConfig, { kind: 'qmp' }>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function secret(env: NodeJS.ProcessEnv, name: string, host?: string): string {
  const v = env[name];
  if (!v) throw new LabError('config', `power: environment variable ${name} is not set`, { host });
  return v;
}

/** ipmitool argv for an action; the password travels in IPMI_PASSWORD (`-E`), never here. */
export function ipmiArgv(c: IpmiConfig, action: 'on' | 'off' | 'cycle' | 'reset' | 'status'): string[] {
  return [...ipmitoolBase(c), 'chassis', 'power', action];
}

export interface HttpJsonRequest {
  method: 'GET' | 'POST';
  url: string;
  headers: Record<string, string>;
  body?: string;
}

export type RedfishAction = 'status' | 'On' | 'ForceOff' | 'ForceRestart';

export function redfishRequest(c: RedfishConfig, action: RedfishAction, password: string): HttpJsonRequest {
  const base = c.url.replace(/\/+$/, '').replace(/\/redfish\/v1$/, '');
  const system = `${base}/redfish/v1/Systems/${encodeURIComponent(c.systemId)}`;
  const headers = {
    authorization: `Basic ${Buffer.from(`${c.user}:${password}`).toString('base64')}`,
    accept: 'application/json',
  };
  if (action === 'status') return { method: 'GET', url: system, headers };
  return {
    method: 'POST',
    url: `${system}/Actions/ComputerSystem.Reset`,
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify({ ResetType: action }),
  };
}

/**
 * Node's https with an optional CA: a BMC's self-signed certificate is pinned through
 * `caFile`, never accepted blindly. (Global fetch cannot take a CA without the undici
 * package, which is not a dependency; one small transport serves both cases.)
 */
function httpJson(req: HttpJsonRequest, ca: string | undefined, timeoutMs: number): Promise<{ status: number; body: string }> {
  const url = new URL(req.url);
  const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
  return new Promise((resolve, reject) => {
    const r = send(url, { method: req.method, headers: req.headers, ca, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    r.on('timeout', () => r.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    r.on('error', reject);
    r.end(req.body);
  });
}

/** Shared by the kinds that really switch off and on: status follow-up and minimum off time. */
abstract class OffOnPower implements PowerController {
  private offSince: number | undefined;
  constructor(
    protected readonly kind: string,
    protected readonly minOffMs: number,
    protected readonly recorder: Recorder,
    protected readonly opts: PowerOptions,
  ) {}
  protected abstract switchTo(state: 'on' | 'off'): Promise<void>;
  protected abstract read(): Promise<PowerState>;
  /** The controller's own reset, used by cycle() when no off time is required. */
  protected reset?(): Promise<void>;

  status(): Promise<PowerState> {
    return this.recorder.step('power status', { host: this.opts.host, kind: this.kind }, () => this.read());
  }
  on(): Promise<void> {
    return this.recorder.step('power on', { host: this.opts.host, kind: this.kind }, async () => {
      const waitMs = this.offSince === undefined ? 0 : this.offSince + this.minOffMs - Date.now();
      if (waitMs > 0) {
        this.recorder.log(`power: keeping ${this.opts.host ?? 'the host'} off ${waitMs} ms more (minOffMs ${this.minOffMs})`);
        await sleep(waitMs);
      }
      await this.switchTo('on');
      await this.settle('on');
    });
  }
  off(): Promise<void> {
    return this.recorder.step('power off', { host: this.opts.host, kind: this.kind }, async () => {
      await this.switchTo('off');
      await this.settle('off');
      this.offSince = Date.now();
    });
  }
  cycle(): Promise<void> {
    return this.recorder.step('power cycle', { host: this.opts.host, kind: this.kind, minOffMs: this.minOffMs }, async () => {
      if (this.minOffMs === 0 && this.reset) {
        await this.reset();
        await this.settle('on');
        return;
      }
      await this.off();
      await this.on();
    });
  }
  private async settle(want: 'on' | 'off'): Promise<void> {
    const timeoutMs = this.opts.settleMs ?? 60_000;
    const deadline = Date.now() + timeoutMs;
    let last: PowerState = 'unknown';
    while (Date.now() < deadline) {
      last = await this.read();
      if (last === want) return;
      await sleep(500);
    }
    throw new LabError('lab-timeout', `power ${want}: status still "${last}" after ${timeoutMs} ms (${this.kind})`, {
      host: this.opts.host,
    });
  }
}

class IpmiPower extends OffOnPower {
  constructor(
    private readonly c: IpmiConfig,
    recorder: Recorder,
    opts: PowerOptions,
  ) {
    super('ipmi', c.minOffMs, recorder, opts);
  }
  private run(action: Parameters<typeof ipmiArgv>[1]) {
    const env = ipmiEnv(this.c, this.opts.env ?? process.env, this.opts.host, 'power');
    return runLocal(ipmiArgv(this.c, action), { env, timeoutMs: 30_000, recorder: this.recorder, check: false });
  }
  protected async switchTo(state: 'on' | 'off' | 'reset') {
    const r = await this.run(state);
    if (r.code !== 0) throw new LabError('unreachable', `ipmitool power ${state} failed: ${r.stderr.trim()}`, { host: this.opts.host });
  }
  protected override reset = () => this.switchTo('reset');
  protected async read(): Promise<PowerState> {
    const r = await this.run('status');
    if (r.code !== 0)
      throw new LabError(
        'unreachable',
        `ipmitool power status failed: ${r.stderr.trim().split('\n').pop() || `exit ${r.code ?? r.signal}`}`,
        { host: this.opts.host },
      );
    return parseIpmiStatus(r.stdout);
  }
}

export function parseIpmiStatus(stdout: string): PowerState {
  const m = stdout.match(/Chassis Power is (on|off)/i);
  return m ? (m[1]!.toLowerCase() as 'on' | 'off') : 'unknown';
}

class RedfishPower extends OffOnPower {
  constructor(
    private readonly c: RedfishConfig,
    recorder: Recorder,
    opts: PowerOptions,
  ) {
    super('redfish', c.minOffMs, recorder, opts);
  }
  /** Read when used, so a missing CA file fails the power part alone, naming the field. */
  private async ca(): Promise<string | undefined> {
    if (!this.c.caFile) return undefined;
    try {
      return await readFile(this.c.caFile, 'utf8');
    } catch (e) {
      throw new LabError(
        'config',
        `power.caFile: cannot read ${this.c.caFile} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
        { host: this.opts.host },
        { cause: e },
      );
    }
  }
  private async call(action: RedfishAction): Promise<{ status: number; body: string }> {
    const req = redfishRequest(this.c, action, secret(this.opts.env ?? process.env, this.c.passwordEnv, this.opts.host));
    const ca = await this.ca();
    try {
      return await httpJson(req, ca, 30_000);
    } catch (e) {
      throw new LabError(
        'unreachable',
        `Redfish ${req.method} ${req.url}: ${(e as Error).message}`,
        { host: this.opts.host },
        { cause: e },
      );
    }
  }
  protected async switchTo(state: 'on' | 'off' | 'reset') {
    const type = state === 'on' ? 'On' : state === 'off' ? 'ForceOff' : 'ForceRestart';
    const r = await this.call(type);
    if (r.status >= 300)
      throw new LabError('unreachable', `Redfish ${type}: HTTP ${r.status} ${r.body.slice(0, 300)}`, { host: this.opts.host });
  }
  protected override reset = () => this.switchTo('reset');
  protected async read(): Promise<PowerState> {
    const r = await this.call('status');
    if (r.status >= 300) return 'unknown';
    const state = (JSON.parse(r.body) as { PowerState?: string }).PowerState;
    return state === 'On' ? 'on' : state === 'Off' ? 'off' : 'unknown';
  }
}

class CommandPower extends OffOnPower {
  constructor(
    private readonly c: CommandConfig,
    recorder: Recorder,
    opts: PowerOptions,
  ) {
    super('command', c.minOffMs, recorder, opts);
  }
  /** The power tool failing to run at all (not found, hung) is the lab's failure, like a BMC that does not answer. */
  private async local(argv: readonly string[], timeoutMs: number) {
    try {
      return await runLocal(argv, { timeoutMs, recorder: this.recorder, check: false });
    } catch (e) {
      throw new LabError(
        'runner-tool',
        `power command ${argv.join(' ')}: ${(e as Error).message.split('\n')[0]}`,
        { host: this.opts.host },
        { cause: e },
      );
    }
  }
  protected async switchTo(state: 'on' | 'off') {
    const argv = state === 'on' ? this.c.on : this.c.off;
    const r = await this.local(argv, 60_000);
    if (r.code !== 0)
      throw new LabError(
        'runner-tool',
        `power ${state} command failed (${r.code !== null ? `exit ${r.code}` : r.signal ? `signal ${r.signal}` : 'did not start'}): ${argv.join(' ')}${r.stderr.trim() ? `: ${r.stderr.trim().split('\n').pop()}` : ''}`,
        { host: this.opts.host },
      );
  }
  protected async read(): Promise<PowerState> {
    const r = await this.local(this.c.status, 30_000);
    if (r.code === null && !r.signal)
      throw new LabError('runner-tool', `power status command did not start: ${this.c.status.join(' ')}`, { host: this.opts.host });
    if (r.code !== 0) return 'unknown';
    const word = r.stdout.trim().toLowerCase();
    return word === 'on' ? 'on' : word === 'off' ? 'off' : 'unknown';
  }
}

/**
 * An emulated host's power through QMP: status from `query-status`, off = `quit` (QEMU
 * exits), cycle = `system_reset` (a reset, not an off time), on = `cont` when QEMU is there
 * but stopped, else the configured start command, which returns once QEMU runs.
 */
class QmpPower implements PowerController {
  constructor(
    private readonly c: QmpConfig,
    private readonly recorder: Recorder,
    private readonly opts: PowerOptions,
  ) {}

  /** 'absent': nothing listens (QEMU is not running); 'busy': QEMU listens but serves another client. */
  private async connect(): Promise<Qmp | 'absent' | 'busy'> {
    try {
      return await Qmp.connect(this.c.socket, { timeoutMs: 5000, name: this.opts.host, recorder: this.recorder });
    } catch (e) {
      return e instanceof LabError && e.kind === 'lab-timeout' ? 'busy' : 'absent';
    }
  }
  private async session(): Promise<Qmp | 'absent'> {
    const qmp = await this.connect();
    if (qmp === 'busy') throw new LabError('console-busy', `QMP ${this.c.socket} is held by another client`, { host: this.opts.host });
    return qmp;
  }
  private async with<T>(qmp: Qmp, body: (q: Qmp) => Promise<T>): Promise<T> {
    try {
      return await body(qmp);
    } finally {
      await qmp.close();
    }
  }
  private static state(status: string): PowerState {
    // CPUs stopped (-S, `stop`, guest shutdown with -no-shutdown) counts as off: on() resumes.
    return ['prelaunch', 'paused', 'shutdown', 'inmigrate'].includes(status) ? 'off' : 'on';
  }
  private step<T>(what: string, body: () => Promise<T>): Promise<T> {
    return this.recorder.step(`power ${what}`, { host: this.opts.host, kind: 'qmp', socket: this.c.socket }, body);
  }

  status(): Promise<PowerState> {
    return this.step('status', async () => {
      const qmp = await this.connect();
      if (qmp === 'absent') return 'off';
      if (qmp === 'busy') return 'unknown';
      return this.with(qmp, async (q) => QmpPower.state((await q.execute<{ status: string }>('query-status')).status));
    });
  }
  off(): Promise<void> {
    return this.step('off', async () => {
      const qmp = await this.session();
      if (qmp === 'absent') return;
      await qmp.execute('quit').catch(() => {});
      const timeoutMs = this.opts.settleMs ?? 60_000;
      let timer: NodeJS.Timeout | undefined;
      const gone = await Promise.race([
        qmp.closed().then(() => true),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(false), timeoutMs))),
      ]);
      clearTimeout(timer);
      await qmp.close();
      if (!gone) throw new LabError('lab-timeout', `QEMU did not exit within ${timeoutMs} ms of quit`, { host: this.opts.host });
    });
  }
  on(): Promise<void> {
    return this.step('on', async () => {
      let qmp = await this.session();
      if (qmp === 'absent') {
        if (!this.c.start)
          throw new LabError('config', `QEMU is not running and power.start is not configured (${this.c.socket})`, {
            host: this.opts.host,
          });
        await runLocal(this.c.start, { timeoutMs: this.opts.settleMs ?? 300_000, recorder: this.recorder });
        qmp = await this.session();
        if (qmp === 'absent')
          throw new LabError('lab-setup', `power.start ran but no QMP answers on ${this.c.socket}`, { host: this.opts.host });
      }
      await this.with(qmp, async (q) => {
        const { status } = await q.execute<{ status: string }>('query-status');
        if (status === 'shutdown') await q.execute('system_reset');
        if (QmpPower.state(status) === 'off') await q.execute('cont');
      });
    });
  }
  cycle(): Promise<void> {
    return this.step('cycle', async () => {
      const qmp = await this.session();
      if (qmp === 'absent') return this.on();
      await this.with(qmp, async (q) => {
        await q.execute('system_reset');
        await q.waitEvent('RESET', { timeoutMs: 10_000 });
        if (QmpPower.state((await q.execute<{ status: string }>('query-status')).status) === 'off') await q.execute('cont');
      });
    });
  }
}

export function createPower(config: PowerConfig, recorder: Recorder = silentRecorder, opts: PowerOptions = {}): PowerController {
  switch (config.kind) {
    case 'ipmi':
      return new IpmiPower(config, recorder, opts);
    case 'redfish':
      return new RedfishPower(config, recorder, opts);
    case 'command':
      return new CommandPower(config, recorder, opts);
    case 'qmp':
      return new QmpPower(config, recorder, opts);
  }
}
