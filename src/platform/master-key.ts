// Where the master key comes from: the environment (read by config.ts), a key file (Docker and
// Kubernetes secrets), or, in development only, a file generated beside the embedded data.
import fs from 'node:fs';
import path from 'node:path';
import { MasterKey } from '../domain/key-encryption.ts';

/** The development key's file name inside POSTERN_DATA_DIR. */
export const DEVELOPMENT_KEY_FILE = 'master.key';

/** Reads a key file. Errors name the file, never its content. */
export function readMasterKeyFile(file: string, source: string): MasterKey {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new Error(`${source}: cannot read the file (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`);
  }
  return MasterKey.parse(text, source);
}

/** Writes a key to a new file, readable by its owner only (0600); refuses to replace a file. */
export function writeMasterKeyFile(file: string, key: MasterKey): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  // Written under a temporary name, then linked into place: link() fails when the name exists, so
  // of two processes creating the key at once exactly one wins, and no reader ever sees half a file.
  const temp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temp, `${key.exportText()}\n`, { mode: 0o600, flag: 'wx' });
  try {
    fs.linkSync(temp, file);
  } finally {
    fs.rmSync(temp, { force: true });
  }
}

export interface MasterKeySettings {
  /** The configured key; undefined in development when none is set (then the file below is used). */
  masterKey: MasterKey | undefined;
  /** Development without a configured key: `<dataDir>/master.key`, generated on first use. */
  developmentMasterKeyFile: string | undefined;
  /** POSTERN_NEW_MASTER_KEY: the target of `postern keys rotate-master`; servers also open values sealed with it. */
  newMasterKey: MasterKey | undefined;
}

/**
 * Turns the master-key variables (passed in by config.ts, the only reader of the environment) into
 * settings; every problem is returned for config.ts to list with the others.
 */
export function readMasterKeySettings(input: {
  mode: 'development' | 'production';
  dataDir: string;
  key: string | undefined;
  keyFile: string | undefined;
  newKey: string | undefined;
}): MasterKeySettings & { problems: string[]; conveniences: string[] } {
  const problems: string[] = [];
  const conveniences: string[] = [];
  const attempt = (read: () => MasterKey): MasterKey | undefined => {
    try {
      return read();
    } catch (error) {
      problems.push((error as Error).message);
      return undefined;
    }
  };
  let masterKey: MasterKey | undefined;
  let developmentMasterKeyFile: string | undefined;
  if (input.key !== undefined && input.keyFile !== undefined) {
    problems.push('POSTERN_MASTER_KEY and POSTERN_MASTER_KEY_FILE are both set: set only one');
  } else if (input.key !== undefined) {
    masterKey = attempt(() => MasterKey.parse(input.key!, 'POSTERN_MASTER_KEY'));
  } else if (input.keyFile !== undefined) {
    const file = path.resolve(input.keyFile);
    masterKey = attempt(() => readMasterKeyFile(file, `POSTERN_MASTER_KEY_FILE (${file})`));
  } else if (input.mode === 'production') {
    problems.push('POSTERN_MASTER_KEY or POSTERN_MASTER_KEY_FILE is required in production (32 random bytes in base64, '
      + 'e.g. from `openssl rand -base64 32`; see docs/master-key.md)');
  } else {
    developmentMasterKeyFile = path.join(input.dataDir, DEVELOPMENT_KEY_FILE);
    conveniences.push(`master key kept in ${developmentMasterKeyFile} (set POSTERN_MASTER_KEY in production)`);
  }
  const newMasterKey = input.newKey === undefined ? undefined
    : attempt(() => MasterKey.parse(input.newKey!, 'POSTERN_NEW_MASTER_KEY'));
  return { masterKey, developmentMasterKeyFile, newMasterKey, problems, conveniences };
}

export interface ResolvedMasterKey {
  key: MasterKey;
  /** Set when this call generated the development key (and wrote it to this file). */
  generatedFile?: string;
}

/**
 * The configured master key, or in development (no key configured) the one in
 * `developmentMasterKeyFile`, generated on first use. config.ts refuses production without a key.
 */
export function resolveMasterKey(config: {
  masterKey: MasterKey | undefined;
  developmentMasterKeyFile: string | undefined;
}): ResolvedMasterKey {
  if (config.masterKey) return { key: config.masterKey };
  const file = config.developmentMasterKeyFile;
  if (!file) throw new Error('POSTERN_MASTER_KEY or POSTERN_MASTER_KEY_FILE is required');
  const source = `the development master key in ${file}`;
  if (!fs.existsSync(file)) {
    const key = MasterKey.generate(source);
    try {
      writeMasterKeyFile(file, key);
      return { key, generatedFile: file };
    } catch (error) {
      // Another process created it first: use theirs.
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
  return { key: readMasterKeyFile(file, source) };
}
