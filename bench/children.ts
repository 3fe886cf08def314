// The servers under test run as child processes, as in production: their CPU is their own and
// the load generator in this process does not share their event loop.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

const TAIL_LINES = 40;

/** A port free right now on 127.0.0.1. Postern needs it before it starts (ISSUER names it). */
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

export class Child {
  readonly name: string;
  readonly process: ChildProcess;
  #tail: string[] = [];
  #spawnError: Error | undefined;

  constructor(name: string, script: string, env: Record<string, string>, cwd: string) {
    this.name = name;
    this.process = spawn(process.execPath, [script], {
      cwd,
      env: { ...process.env, ...env },
      // Piped, not inherited: the servers' banners would break up the report. The output is
      // kept (last lines only) for when a server fails.
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.process.on('error', (error) => { this.#spawnError = error; });
    for (const stream of [this.process.stdout, this.process.stderr]) {
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => {
        this.#tail.push(...chunk.split('\n').filter(Boolean));
        this.#tail.splice(0, Math.max(0, this.#tail.length - TAIL_LINES));
      });
    }
  }

  get pid(): number | undefined {
    return this.process.pid;
  }

  get exited(): boolean {
    return this.#spawnError !== undefined || this.process.exitCode !== null || this.process.signalCode !== null;
  }

  /** What went wrong, with the end of the child's output. */
  failure(what: string): Error {
    const status = this.#spawnError?.message
      ?? (this.exited ? `exited with ${this.process.exitCode ?? this.process.signalCode}` : 'still running');
    return new Error(`${this.name} (PID ${this.pid}) ${what}; ${status}. Last output:\n  ${this.#tail.join('\n  ')}`);
  }

  /** Polls `url` until it answers 200. */
  async waitUntilReady(url: string, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.exited) throw this.failure('did not start');
      try {
        const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
        await response.arrayBuffer();
        if (response.ok) return;
      } catch {
        // Not listening yet.
      }
      await sleep(100);
    }
    throw this.failure(`did not answer ${url} within ${timeoutMs} ms`);
  }

  /** SIGTERM to this child's PID only, SIGKILL if it has not exited after `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.exited || this.pid === undefined) return;
    const exited = new Promise((resolve) => this.process.once('exit', resolve));
    this.process.kill('SIGTERM');
    const force = setTimeout(() => this.process.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(force);
  }
}
