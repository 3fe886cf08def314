// Human output by default, JSON with --json.

export interface Output {
  json: boolean;
  /**
   * Prints a value: as JSON, or through `human` as text. The text is held until `flush`, which
   * a command calls once its changes are written and the database is closed: what it reports has
   * happened, and the process exits right after its last line.
   */
  print<T>(value: T, human: (value: T) => string): void;
  /** Holds text already formatted (lines of JSON or of text) until `flush`. */
  write(text: string): void;
  flush(): void;
}

export function createOutput(json: boolean, write = (text: string) => process.stdout.write(text)): Output {
  let held = '';
  return {
    json,
    print(value, human) {
      held += json ? `${JSON.stringify(value, null, 2)}\n` : `${human(value)}\n`;
    },
    write(text) {
      held += text;
    },
    flush() {
      if (held) write(held);
      held = '';
    },
  };
}

/** A plain aligned table. */
export function table(headers: string[], rows: string[][]): string {
  if (rows.length === 0) return '(none)';
  const widths = headers.map((header, i) => Math.max(header.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

/** "key: value" lines, aligned. */
export function fields(pairs: [string, string | number | boolean | null | undefined][]): string {
  const width = Math.max(...pairs.map(([key]) => key.length));
  return pairs.map(([key, value]) => `${`${key}:`.padEnd(width + 2)}${value ?? '-'}`).join('\n');
}

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** "90s", "30m", "24h", "7d" or a number of seconds, to seconds. */
export function parseDuration(value: string): number {
  const match = /^(\d+)([smhd]?)$/.exec(value.trim());
  if (!match) throw new Error(`invalid duration "${value}" (use e.g. 90s, 30m, 24h, 7d)`);
  return Number(match[1]) * UNITS[match[2] || 's']!;
}
