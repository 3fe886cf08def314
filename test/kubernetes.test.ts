// deploy/kubernetes, checked without a cluster: every manifest parses; the base and each overlay,
// built as kustomize builds them (`kubectl kustomize`, where kubectl is installed; the base alone
// is read directly otherwise), give the servers only settings the server knows and valid
// together, one worker per pod, migrations off; probes on the port PORT names, over HTTPS because
// TLS_CERT_FILE is set; the master key and the certificate mounted where the settings say; a stop
// grace longer than the drain; Services, the PodDisruptionBudget and the autoscaler aimed at the
// servers; a migration Job with the servers' settings that migrates and creates the keys; Redis
// where REDIS_URL points; memory requests no smaller than the RSS docs/scaling.md measured.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { MasterKey } from '../src/domain/key-encryption.ts';
import { writeMasterKeyFile } from '../src/platform/master-key.ts';
import { filesUnder, read, unknownVariables, yamlDocuments } from './support/deploy-files.ts';
import { cleanUp, makeTempDir, ROOT } from './support/process.ts';

const DIR = 'deploy/kubernetes';
type Manifest = Record<string, any>;

afterAll(cleanUp);

const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).status === 0 ? 'kubectl' : undefined;
if (!kubectl) console.warn('kubectl is not installed: the overlays are parsed, the base alone is built and checked');

/** The base as kustomize would build it, for machines without kubectl: its resources and generated ConfigMap. */
function readBase(): Manifest[] {
  const [kustomization] = yamlDocuments(`${DIR}/base/kustomization.yaml`);
  const manifests: Manifest[] = (kustomization.resources as string[]).flatMap((file) => yamlDocuments(`${DIR}/base/${file}`));
  for (const generator of kustomization.configMapGenerator) {
    const data = Object.fromEntries((generator.literals as string[]).map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
    manifests.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: generator.name }, data });
  }
  return manifests;
}

function build(dir: string): Manifest[] {
  if (!kubectl) return readBase();
  const result = spawnSync(kubectl, ['kustomize', path.join(ROOT, dir)], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`kubectl kustomize ${dir}: ${result.stderr}`);
  return parseAllDocuments(result.stdout).map((document) => document.toJS()).filter(Boolean);
}

const overlays = fs.readdirSync(path.join(ROOT, DIR, 'overlays'));
const builds: [string, string][] = [['base', `${DIR}/base`] as [string, string], ...overlays.map((name): [string, string] => [name, `${DIR}/overlays/${name}`])]
  .filter(([name]) => kubectl || name === 'base');

it('every manifest under deploy/kubernetes parses, and names its kind', () => {
  const files = filesUnder(DIR).filter((file) => file.endsWith('.yaml'));
  expect(files.length).toBeGreaterThan(5);
  for (const file of files) {
    for (const manifest of yamlDocuments(file)) {
      expect(manifest.kind, file).toEqual(expect.any(String));
      expect(manifest.apiVersion, file).toEqual(expect.any(String));
    }
  }
});

/** The value a name takes in a pod's environment: env entries first, then envFrom ConfigMaps. */
function environmentOf(container: Manifest, manifests: Manifest[]): { values: Record<string, string>; fromSecrets: Record<string, { name: string; key: string }> } {
  const values: Record<string, string> = {};
  for (const source of container.envFrom ?? []) {
    const map = manifests.find((each) => each.kind === 'ConfigMap' && each.metadata.name === source.configMapRef?.name);
    expect(map, `ConfigMap ${source.configMapRef?.name}`).toBeDefined();
    Object.assign(values, map!.data);
  }
  const fromSecrets: Record<string, { name: string; key: string }> = {};
  for (const entry of container.env ?? []) {
    if (entry.value !== undefined) values[entry.name] = entry.value;
    if (entry.valueFrom?.secretKeyRef) fromSecrets[entry.name] = entry.valueFrom.secretKeyRef;
  }
  return { values, fromSecrets };
}

/** The file a path names in a pod: the Secret and key mounted there, if any. */
function secretFileAt(file: string, container: Manifest, pod: Manifest): { secret: string; key: string } | undefined {
  for (const mount of container.volumeMounts ?? []) {
    if (!file.startsWith(`${mount.mountPath}/`)) continue;
    const volume = pod.volumes.find((each: Manifest) => each.name === mount.name);
    if (!volume?.secret) continue;
    const name = file.slice(mount.mountPath.length + 1);
    const items = volume.secret.items as { key: string; path: string }[] | undefined;
    const key = items ? items.find((item) => item.path === name)?.key : name;
    if (key) return { secret: volume.secret.secretName, key };
  }
  return undefined;
}

const selects = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.entries(selector).every(([key, value]) => labels[key] === value);

describe.each(builds)('the %s build', (_name, dir) => {
  const manifests = build(dir);
  const find = (kind: string, name?: string) => manifests.filter((each) => each.kind === kind && (!name || each.metadata.name === name));
  const [deployment] = find('Deployment', 'postern');
  const pod = deployment!.spec.template.spec;
  const [server] = pod.containers as Manifest[];
  const { values, fromSecrets } = environmentOf(server!, manifests);
  const portNamed = (port: string | number) => (typeof port === 'number' ? port : server!.ports.find((each: Manifest) => each.name === port)?.containerPort);

  it('gives the servers settings Postern knows, valid together: production, one worker, migrations off', () => {
    expect(pod.containers).toHaveLength(1);
    expect(unknownVariables([...Object.keys(values), ...Object.keys(fromSecrets)])).toEqual([]);
    expect(values).toMatchObject({ NODE_ENV: 'production', WORKERS: '1', MIGRATE_ON_START: 'false' });
    expect(fromSecrets.DATABASE_URL).toEqual({ name: 'postern-database', key: 'url' });
    const keyFile = path.join(makeTempDir('pst-k8s-'), 'master-key');
    writeMasterKeyFile(keyFile, MasterKey.generate('test'));
    const { problems } = loadConfig({ ...values, DATABASE_URL: 'postgres://postern:secret@db:5432/postern', POSTERN_MASTER_KEY_FILE: keyFile });
    expect(problems).toEqual([]);
  });

  it('starts the image\'s command (node src/main.ts), never npm', () => {
    expect(server!.command).toBeUndefined();
    expect(server!.args).toBeUndefined();
    expect(JSON.stringify(manifests)).not.toMatch(/npm (run )?start/);
  });

  it('probes the port PORT names, over HTTPS since TLS_CERT_FILE is set', () => {
    const scheme = values.TLS_CERT_FILE ? 'HTTPS' : 'HTTP';
    const probes = { startupProbe: '/healthz', readinessProbe: '/readyz', livenessProbe: '/healthz' };
    for (const [probe, probePath] of Object.entries(probes)) {
      const get = server![probe]?.httpGet;
      expect(get, probe).toBeDefined();
      expect(portNamed(get.port), probe).toBe(Number(values.PORT));
      expect(get.scheme, probe).toBe(scheme);
      expect(get.path, probe).toBe(probePath);
    }
    expect(portNamed('admin')).toBe(Number(values.ADMIN_PORT));
    expect(portNamed('metrics')).toBe(Number(values.METRICS_PORT));
  });

  it('mounts the master key and the certificate where the settings say', () => {
    expect(secretFileAt(values.POSTERN_MASTER_KEY_FILE!, server!, pod)).toEqual({ secret: 'postern-master-key', key: 'master-key' });
    expect(secretFileAt(values.TLS_CERT_FILE!, server!, pod)).toEqual({ secret: 'postern-tls', key: 'tls.crt' });
    expect(secretFileAt(values.TLS_KEY_FILE!, server!, pod)).toEqual({ secret: 'postern-tls', key: 'tls.key' });
  });

  it('waits longer than a server drains, and stops sending it requests within its shutdown delay', () => {
    const delay = Number(values.SHUTDOWN_DELAY_SECONDS);
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(delay + Number(values.SHUTDOWN_TIMEOUT_SECONDS));
    const readiness = server!.readinessProbe;
    expect(readiness.periodSeconds * readiness.failureThreshold).toBeLessThanOrEqual(delay);
  });

  it('requests at least the memory one process was measured to use (docs/scaling.md), CPU, and no more privileges than it needs', () => {
    const measured = /peak RSS of one process: (\d+) MiB/.exec(read('docs/scaling.md'))?.[1];
    expect(measured, 'docs/scaling.md states the measured peak RSS').toBeDefined();
    const mebibytes = (value: string) => Number(/^(\d+)Mi$/.exec(value)?.[1]);
    expect(mebibytes(server!.resources.requests.memory)).toBeGreaterThanOrEqual(Number(measured));
    expect(mebibytes(server!.resources.limits.memory)).toBeGreaterThan(mebibytes(server!.resources.requests.memory));
    expect(server!.resources.requests.cpu).toBeDefined();
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
    expect(server!.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect(pod.automountServiceAccountToken).toBe(false);
  });

  it('aims the Services, the PodDisruptionBudget, the autoscaler and the network policy at the servers', () => {
    const labels = deployment!.spec.template.metadata.labels;
    expect(selects(deployment!.spec.selector.matchLabels, labels)).toBe(true);
    const services = find('Service').filter((service) => selects(service.spec.selector, labels));
    expect(services.map((service) => service.metadata.name).sort()).toEqual(['postern', 'postern-admin']);
    for (const service of services) for (const port of service.spec.ports) expect(portNamed(port.targetPort), service.metadata.name).toBeDefined();
    const [budget] = find('PodDisruptionBudget');
    expect(selects(budget!.spec.selector.matchLabels, labels)).toBe(true);
    const [autoscaler] = find('HorizontalPodAutoscaler');
    expect(autoscaler!.spec.scaleTargetRef).toMatchObject({ kind: 'Deployment', name: deployment!.metadata.name });
    expect(autoscaler!.spec.metrics[0].resource.name).toBe('cpu');
    expect(autoscaler!.spec.minReplicas).toBeGreaterThanOrEqual(2);
    // The autoscaler owns the replica count; a count here would be reset at every apply.
    expect(deployment!.spec.replicas).toBeUndefined();
    const policy = find('NetworkPolicy').find((each) => selects(each.spec.podSelector.matchLabels, labels));
    expect(policy!.spec.ingress.flatMap((rule: Manifest) => rule.ports.map((port: Manifest) => portNamed(port.port)))).toContain(Number(values.PORT));
  });

  it('points REDIS_URL at a Service of the build, on its port', () => {
    const url = new URL(values.REDIS_URL!);
    const [service] = find('Service', url.hostname);
    expect(service!.spec.ports.map((port: Manifest) => String(port.port))).toContain(url.port);
  });

  it('has a migration Job with the servers\' image and settings that migrates, then creates the keys', () => {
    const [job] = find('Job');
    const spec = job!.spec.template.spec;
    const steps = [...spec.initContainers, ...spec.containers] as Manifest[];
    expect(steps.map((step) => step.command.join(' '))).toEqual(['node bin/postern.js migrate', 'node bin/postern.js keys generate --if-missing']);
    for (const step of steps) {
      expect(step.image).toBe(server!.image);
      const environment = environmentOf(step, manifests);
      expect(environment.values).toEqual(values);
      expect(environment.fromSecrets).toEqual(fromSecrets);
      expect(secretFileAt(values.POSTERN_MASTER_KEY_FILE!, step, spec)).toEqual({ secret: 'postern-master-key', key: 'master-key' });
    }
    expect(spec.restartPolicy).toBe('Never');
  });

  it('lets the documented first apply (everything but the servers) create what the Job needs', () => {
    // kubectl apply -l 'app.kubernetes.io/component!=server'
    const first = manifests.filter((each) => each.metadata.labels?.['app.kubernetes.io/component'] !== 'server');
    expect(first.map((each) => each.kind)).toEqual(expect.arrayContaining(['ConfigMap', 'Job']));
    expect(first.some((each) => each.kind === 'Deployment' && each.metadata.name === 'postern')).toBe(false);
    const doc = read('docs/kubernetes.md');
    expect(doc).toContain("-l 'app.kubernetes.io/component!=server'");
    expect(doc).toMatch(/kubectl -n \S+ wait --for=condition=complete job\/postern-migrate/);
  });
});
