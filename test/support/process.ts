// Runs Postern as a user does: `node bin/postern.js ...` and `node src/main.ts`, as child processes
// with an environment built from scratch (nothing leaks in from the test runner's environment).
// Every child and temporary folder made here is remembered so that `cleanUp()` can end and remove
// them, even after a failed test.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(fileURLToPath(import.meta.url), '../../..');
export const CLI = path.join(ROOT, 'bin/postern.js');
export const MAIN = path.join(ROOT, 'src/main.ts');

/** How long a CLI command may take to exit (an embedded command takes about two seconds). */
export const CLI_TIMEOUT_MS = 20_000;

export type Env = Record<string, string | undefined>;

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();

/**
 * A new empty folder under the system temp folder. The path stays short: the embedded server's
 * Unix socket lives inside it and socket paths are limited to about 100 bytes.
 */
export function makeTempDir(prefix = 'postern-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

let scratch: string | undefined;

/** The working folder of every child: empty, so that nothing can pick up a stray .postern-data. */
function workDir(): string {
  scratch ??= makeTempDir('postern-cwd-');
  return scratch;
}

/** The base environment of every child: enough to run node, nothing Postern reads. */
function baseEnv(): Env {
  const env: Env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME ?? os.tmpdir(),
    TZ: 'UTC',
    // Node 22 announces type stripping as experimental on stderr; Node 24 does not. The tests
    // check stderr exactly, so silence that one warning class (and only it) on every version.
    NODE_OPTIONS: '--disable-warning=ExperimentalWarning',
    // Servers and commands start hundreds of times: compile (and type-strip) each module once.
    NODE_COMPILE_CACHE: path.join(os.tmpdir(), 'postern-test-compile-cache'),
  };
  if (process.env.LANG) env.LANG = process.env.LANG;
  return env;
}

function cleanEnv(env: Env): Record<string, string> {
  const merged = { ...baseEnv(), ...env };
  return Object.fromEntries(Object.entries(merged).filter((entry): entry is [string, string] => entry[1] !== undefined));
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface RunResult extends Exit {
  stdout: string;
  stderr: string;
  /** The process did not exit on its own within the time limit and was killed. */
  timedOut: boolean;
  ms: number;
  /** From its last output to its exit: a command that is done should exit at once. */
  lingerMs: number;
}

/** Runs a command to completion (killing it after `timeoutMs`). */
export function run(
  args: string[],
  options: { env: Env; cwd?: string; timeoutMs?: number; stdin?: string },
): Promise<RunResult> {
  const started = Date.now();
  const child = spawn(process.execPath, args, {
    cwd: options.cwd ?? workDir(),
    env: cleanEnv(options.env),
    stdio: [options.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  children.add(child);
  if (options.stdin !== undefined) child.stdin!.end(options.stdin);
  let stdout = '';
  let stderr = '';
  let lastOutput = started;
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk; lastOutput = Date.now(); });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; lastOutput = Date.now(); });
  let exitedAt: number | undefined;
  child.once('exit', () => { exitedAt = Date.now(); });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, options.timeoutMs ?? CLI_TIMEOUT_MS);
  return new Promise((resolve, reject) => {
    child.once('error', (error) => {
      clearTimeout(timer);
      children.delete(child);
      reject(error);
    });
    // 'close': the process has exited and its output is complete.
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      const now = Date.now();
      resolve({ code, signal, stdout, stderr, timedOut, ms: now - started, lingerMs: (exitedAt ?? now) - lastOutput });
    });
  });
}

/** `node bin/postern.js ...args` */
export function postern(args: string[], env: Env, timeoutMs = CLI_TIMEOUT_MS, stdin?: string): Promise<RunResult> {
  return run([CLI, ...args], { env, timeoutMs, stdin });
}

/** A description of a finished command and its output, for assertion messages. */
export function describeRun(args: string[], result: RunResult, program = 'postern'): string {
  const how = result.timedOut
    ? `did not exit within ${result.ms} ms (killed)`
    : `exited with ${result.code ?? result.signal} after ${result.ms} ms, ${result.lingerMs} ms after its last output`;
  return `${program} ${args.join(' ')} ${how}\n--- stdout ---\n${result.stdout}--- stderr ---\n${result.stderr}`;
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A running `node src/main.ts`. */
export class ServerProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  stdout = '';
  stderr = '';
  readonly exited: Promise<Exit>;
  #exit: Exit | undefined;

  constructor(env: Env, cwd = workDir()) {
    this.child = spawn(process.execPath, [MAIN], { cwd, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    if (this.child.pid === undefined) throw new Error('could not start node src/main.ts');
    this.pid = this.child.pid;
    children.add(this.child);
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => { this.stdout += chunk; });
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { this.stderr += chunk; });
    this.exited = new Promise((resolve) => {
      this.child.once('close', (code, signal) => {
        this.#exit = { code, signal };
        children.delete(this.child);
        resolve(this.#exit);
      });
    });
  }

  get running(): boolean {
    return this.#exit === undefined;
  }

  get output(): string {
    return `--- stdout ---\n${this.stdout}--- stderr ---\n${this.stderr}`;
  }

  /** Resolves with the exit, or undefined if the process still runs after `timeoutMs`. */
  async waitForExit(timeoutMs: number): Promise<Exit | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => { timer = setTimeout(() => resolve(undefined), timeoutMs); });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Polls `url` + /healthz until it answers 200; throws if the process exits first or time runs out. */
  async waitUntilHealthy(url: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`the server exited (${JSON.stringify(this.#exit)}) before it was ready\n${this.output}`);
      try {
        const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) });
        if (res.status === 200) return;
      } catch {}
      await sleep(100);
    }
    throw new Error(`the server did not answer ${url}/healthz within ${timeoutMs} ms\n${this.output}`);
  }

  /** Waits until stdout matches `pattern` (output arrives through a pipe, after the fact). */
  async waitForOutput(pattern: RegExp, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(this.stdout)) {
      if (Date.now() >= deadline) throw new Error(`the server did not print ${pattern} within ${timeoutMs} ms\n${this.output}`);
      if (!this.running) throw new Error(`the server exited before it printed ${pattern}\n${this.output}`);
      await sleep(50);
    }
  }

  /** Sends a signal to this process (by its PID) and waits for it to exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 20_000): Promise<Exit | undefined> {
    if (this.running) process.kill(this.pid, signal);
    return this.waitForExit(timeoutMs);
  }
}

/** Kills every child still running (by PID) and removes every temporary folder made here. */
export async function cleanUp(): Promise<void> {
  const running = [...children];
  for (const child of running) {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {}
    }
  }
  await Promise.all(running.map((child) => new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('close', () => resolve());
  })));
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
  scratch = undefined;
}
