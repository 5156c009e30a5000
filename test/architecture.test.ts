import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * Imports point one way (docs/architecture.md): no folder of src/ imports a folder that
 * imports it back, at run time or for types. A file directly in src/ counts as a folder of its own.
 */
const SRC = resolve('src');

function files(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) files(p, out);
    else if (p.endsWith('.ts') || p.endsWith('.cts')) out.push(p); // .cts: the CLI's CommonJS modules
  }
  return out;
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'";]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|import\(['"]([^'"]+)['"]\)\./g;

function folderOf(file: string): string {
  const rel = relative(SRC, file);
  const [first] = rel.split('/');
  return rel.includes('/') ? first! : rel.replace(/\.ts$/, '');
}

export function folderGraph(): Map<string, Map<string, string[]>> {
  const graph = new Map<string, Map<string, string[]>>();
  for (const file of files(SRC)) {
    const from = folderOf(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[1] ?? m[2] ?? m[3];
      if (!spec?.startsWith('.')) continue;
      const target = resolve(dirname(file), spec).replace(/\.js$/, '.ts').replace(/\.cjs$/, '.cts');
      if (!target.startsWith(SRC)) continue;
      const to = folderOf(target);
      if (to === from) continue;
      const edges = graph.get(from) ?? new Map<string, string[]>();
      edges.set(to, [...(edges.get(to) ?? []), relative(SRC, file)]);
      graph.set(from, edges);
    }
  }
  return graph;
}

/** Strongly connected components with more than one folder (Tarjan). */
function cycles(graph: Map<string, Map<string, string[]>>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v)?.keys() ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1) out.push(comp.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return out;
}

/** The layers of docs/architecture.md, from the bottom: a folder imports only its own layer and those below. */
const LAYERS = [
  ['clock', 'errors', 'private-files', 'token', 'log', 'tls'],
  ['kubernetes', 'config', 'store'],
  ['authority'],
  ['verify', 'sources'],
  ['observe', 'core'],
  ['delivery', 'forward-auth'],
  ['http', 'agent'],
  ['server'],
  ['cli'],
];

describe('the structure of src/', () => {
  it('imports point one way: edges -> services -> store and token, by the layers of docs/architecture.md', () => {
    const layerOf = new Map(LAYERS.flatMap((names, i) => names.map((n) => [n, i] as const)));
    const graph = folderGraph();
    const unplaced = [...graph.keys()].filter((f) => !layerOf.has(f));
    expect(unplaced, 'every folder of src/ has a layer').toEqual([]);
    const upward = [...graph].flatMap(([from, edges]) =>
      [...edges].filter(([to]) => layerOf.get(to)! > layerOf.get(from)!).map(([to, via]) => `${from} -> ${to} (${via.slice(0, 3).join(', ')})`),
    );
    expect(upward).toEqual([]);
  });

  it('has no import cycle between folders', () => {
    const graph = folderGraph();
    const found = cycles(graph).map((comp) =>
      comp.flatMap((a) => comp.filter((b) => graph.get(a)?.has(b)).map((b) => `${a} -> ${b} (${graph.get(a)!.get(b)!.slice(0, 3).join(', ')})`)),
    );
    expect(found).toEqual([]);
  });

  it('reads imports the way the code writes them (the check itself can fail)', () => {
    const graph = folderGraph();
    // cli is the top edge: it imports services; nothing imports cli.
    expect(graph.get('cli')?.size ?? 0).toBeGreaterThan(2);
    for (const [from, edges] of graph) expect({ from, cli: edges.has('cli') }).toEqual({ from, cli: false });
  });
});
