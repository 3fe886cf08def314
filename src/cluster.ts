// WORKERS > 1: this process is the primary of a cluster. It prepared the database before (main.ts);
// it forks the workers, which share the listening ports (the primary hands out connections), serves
// the metrics of all of them on METRICS_PORT, replaces a worker that dies, and on SIGTERM asks
// every worker to stop gracefully and exits when they have.
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import type { Config } from './config.ts';
import { metricsServer } from './http/metrics-server.ts';
import type { Logger } from './platform/logger.ts';
import { STOP_MESSAGE } from './serve.ts';

/** More worker deaths than this within the window means something is wrong at start: give up. */
const CRASH_LIMIT = 5;
const CRASH_WINDOW_MS = 30_000;

export function runPrimary(config: Config, logger: Logger, banner: string | undefined): void {
  const aggregator = new AggregatorRegistry();
  let stopping = false;
  const crashes: number[] = [];
  let listening = 0;
  /** Workers that listen, and so have installed their answer to STOP_MESSAGE. */
  const ready = new WeakSet<Worker>();

  const fork = (): Worker => {
    const worker = cluster.fork();
    worker.once('listening', () => {
      ready.add(worker);
      listening += 1;
      if (listening === config.workers && banner) process.stdout.write(banner);
    });
    return worker;
  };

  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return;
    const now = Date.now();
    crashes.push(now);
    while (crashes.length && crashes[0]! < now - CRASH_WINDOW_MS) crashes.shift();
    logger.error({ worker: worker.process.pid, code, signal }, 'worker exited; starting another');
    if (crashes.length > CRASH_LIMIT) {
      logger.fatal({ crashes: crashes.length, windowSeconds: CRASH_WINDOW_MS / 1000 }, 'workers keep exiting; stopping');
      void stop('crash loop', 1);
      return;
    }
    fork();
  });

  const metrics = config.metrics.port !== undefined
    ? metricsServer(() => aggregator.clusterMetrics(), aggregator.contentType)
    : undefined;
  if (metrics && config.metrics.port !== undefined) {
    metrics.once('error', (error) => {
      process.stderr.write(`Postern cannot start:\n  - cannot listen for metrics on ${config.metrics.host}:${config.metrics.port}: ${error.message}\n`);
      void stop('metrics listener failed', 1);
    });
    metrics.listen(config.metrics.port, config.metrics.host);
  }

  async function stop(reason: string, exitCode = 0): Promise<void> {
    if (stopping) return;
    stopping = true;
    logger.info({ reason, workers: Object.keys(cluster.workers ?? {}).length }, 'stopping the workers');
    metrics?.close();
    const workers = Object.values(cluster.workers ?? {}).filter((worker): worker is Worker => worker !== undefined);
    const exited = workers.map((worker) => new Promise((resolve) => worker.once('exit', resolve)));
    const tell = (worker: Worker) => { if (worker.isConnected()) worker.send(STOP_MESSAGE); };
    for (const worker of workers) {
      // A worker still starting up has no one listening for the message yet: it is told once it
      // listens (a message with no listener is lost).
      if (ready.has(worker)) tell(worker);
      else worker.once('listening', () => tell(worker));
    }
    // Each worker bounds its own shutdown; this is the backstop for one that hangs.
    const force = setTimeout(() => workers.forEach((worker) => worker.process.kill('SIGKILL')), (config.shutdownDelaySeconds + config.shutdownTimeoutSeconds + 10) * 1000);
    force.unref();
    await Promise.all(exited);
    logger.info('stopped');
    process.exit(exitCode);
  }
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));

  logger.info({ workers: config.workers, primary: process.pid }, 'starting workers');
  for (let i = 0; i < config.workers; i += 1) fork();
}
