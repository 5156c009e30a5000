export type OutputFormat = 'table' | 'json';

export function print(format: OutputFormat, data: unknown, columns?: [header: string, get: (row: any) => unknown][]): void {
  if (format === 'json' || !columns) {
    process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
    return;
  }
  const rows = Array.isArray(data) ? data : [data];
  const cells = rows.map((r) => columns.map(([, get]) => cell(get(r))));
  const widths = columns.map(([h], i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (values: string[]) => values.map((v, i) => v.padEnd(widths[i])).join('  ').trimEnd();
  process.stdout.write(`${line(columns.map(([h]) => h.toUpperCase()))}\n`);
  for (const c of cells) process.stdout.write(`${line(c)}\n`);
  if (!rows.length) process.stdout.write('(none)\n');
}

function cell(v: unknown): string {
  if (v === null || v === undefined) return '-';
  if (Array.isArray(v)) return v.join(',');
  return String(v);
}

/** "in 3d", "2h ago": expiry and last use at a glance. */
export function relative(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '-';
  const diff = Date.parse(iso) - now;
  const abs = Math.abs(diff);
  const unit = abs >= 86_400_000 ? [86_400_000, 'd'] : abs >= 3_600_000 ? [3_600_000, 'h'] : abs >= 60_000 ? [60_000, 'm'] : [1000, 's'];
  const n = Math.round(abs / (unit[0] as number));
  return diff >= 0 ? `in ${n}${unit[1]}` : `${n}${unit[1]} ago`;
}
