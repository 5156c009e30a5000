import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';

/**
 * The recipes in docs/recipes/ are executed by tests: a fenced block whose info string carries
 * `recipe=<name>` (```yaml recipe=tokenwarden```, ```sh recipe=setup```) is read from the page
 * and run as it is written, so the page cannot drift from what works.
 *
 * Pages show production values (https://cpd.example.com, /etc/prometheus/…, 7d). A test swaps
 * them for its own (a 127.0.0.1 URL, a temp dir, seconds) with `replace`; each swap must match
 * at least once, so an edit of the page that a test no longer covers fails loudly.
 */

export interface RecipeBlock {
  name: string;
  lang: string;
  text: string;
}

/** Every marked block of a page, in order. */
export function recipeBlocks(page: string): RecipeBlock[] {
  const text = readFileSync(resolve(page), 'utf8');
  const blocks: RecipeBlock[] = [];
  const fence = /^(`{3,})([^\n`]*)\n([\s\S]*?)^\1[ \t]*$/gm;
  for (const m of text.matchAll(fence)) {
    const info = m[2]!.trim().split(/\s+/);
    const name = info.find((w) => w.startsWith('recipe='))?.slice('recipe='.length);
    if (name) blocks.push({ name, lang: info[0] ?? '', text: m[3]! });
  }
  return blocks;
}

/** The text of one marked block, with the test's substitutions applied (each must match). */
export function recipeBlock(page: string, name: string, replace: Record<string, string> = {}): string {
  const found = recipeBlocks(page).filter((b) => b.name === name);
  if (found.length !== 1) throw new Error(`${page}: expected one block marked recipe=${name}, found ${found.length}`);
  let text = found[0]!.text;
  for (const [from, to] of Object.entries(replace)) {
    if (!text.includes(from)) throw new Error(`${page} recipe=${name}: the test replaces "${from}", which the page no longer contains`);
    text = text.split(from).join(to);
  }
  return text;
}

/** A marked YAML or JSON block, parsed. */
export function recipeYaml<T = any>(page: string, name: string, replace: Record<string, string> = {}): T {
  return parseYaml(recipeBlock(page, name, replace)) as T;
}

/**
 * The `tokenwarden …` commands of a marked shell block, as argument lists (without the leading
 * `tokenwarden`). Comments and blank lines are skipped; quotes and trailing backslashes are
 * understood; anything a plain argument list cannot express (pipes, redirection, `$VAR`, other
 * programs) is refused, so the page only shows commands a test really runs.
 */
export function recipeCommands(page: string, name: string, replace: Record<string, string> = {}): string[][] {
  const text = recipeBlock(page, name, replace).replace(/\\\n\s*/g, ' ');
  const commands: string[][] = [];
  for (const raw of text.split('\n')) {
    const words = shellWords(raw, `${page} recipe=${name}`);
    if (!words.length) continue;
    if (words[0] !== 'tokenwarden') throw new Error(`${page} recipe=${name}: "${raw.trim()}" is not a tokenwarden command`);
    commands.push(words.slice(1));
  }
  return commands;
}

function shellWords(line: string, where: string): string[] {
  const words: string[] = [];
  let word: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === '#' && word === null) break; // a comment starts a word
    if (c === ' ' || c === '\t') {
      if (word !== null) words.push(word);
      word = null;
      continue;
    }
    if (c === "'" || c === '"') {
      const end = line.indexOf(c, i + 1);
      if (end < 0) throw new Error(`${where}: unbalanced ${c} in "${line.trim()}"`);
      const quoted = line.slice(i + 1, end);
      if (c === '"' && /[$`\\]/.test(quoted)) throw new Error(`${where}: shell expansion in "${line.trim()}" cannot be run by a test`);
      word = (word ?? '') + quoted;
      i = end;
      continue;
    }
    if ('|&;<>$`\\(){}'.includes(c)) throw new Error(`${where}: "${line.trim()}" uses shell syntax (${c}) that a test cannot run as written`);
    word = (word ?? '') + c;
  }
  if (word !== null) words.push(word);
  return words;
}
