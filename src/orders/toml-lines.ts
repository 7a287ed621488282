/**
 * smol-toml reports positions for syntax errors only, not for values, so the
 * line of a key is found by scanning the source: headers (`[a.b]`, `[[a]]`)
 * set the current table, `key = ...` and `a.b = ...` lines name a path below
 * it, and multi-line strings are skipped so their contents are never read as
 * keys. This is a locator for messages, not a parser: the document has
 * already parsed when it is asked.
 */
export class KeyLines {
  readonly #lines = new Map<string, number>();

  constructor(text: string) {
    const lines = text.split(/\r?\n/);
    let table: string[] = [];
    let openQuote: string | undefined;
    for (let index = 0; index < lines.length; index++) {
      const raw = lines[index] ?? '';
      const lineNo = index + 1;
      if (openQuote !== undefined) {
        if (closesMultiline(raw, 0, openQuote)) openQuote = undefined;
        continue;
      }
      let i = skipSpace(raw, 0);
      const c = raw[i];
      if (c === undefined || c === '#') continue;
      if (c === '[') {
        const array = raw[i + 1] === '[';
        const parsed = readKeyPath(raw, i + (array ? 2 : 1));
        if (parsed === undefined) continue;
        table = parsed.path;
        this.#record(table, lineNo);
        continue;
      }
      const parsed = readKeyPath(raw, i);
      if (parsed === undefined || raw[parsed.end] !== '=') continue;
      const full = [...table, ...parsed.path];
      for (let n = table.length + 1; n <= full.length; n++) this.#record(full.slice(0, n), lineNo);
      i = skipSpace(raw, parsed.end + 1);
      const quote = raw.startsWith('"""', i) ? '"""' : raw.startsWith("'''", i) ? "'''" : undefined;
      if (quote !== undefined && !closesMultiline(raw, i + 3, quote)) openQuote = quote;
    }
  }

  /** Line of `path`, else of its nearest enclosing key or table (an inline table's key); undefined if none. */
  lineOf(path: readonly string[]): number | undefined {
    for (let n = path.length; n > 0; n--) {
      const line = this.#lines.get(pathKey(path.slice(0, n)));
      if (line !== undefined) return line;
    }
    return undefined;
  }

  #record(path: readonly string[], line: number): void {
    const key = pathKey(path);
    if (!this.#lines.has(key)) this.#lines.set(key, line);
  }
}

function pathKey(path: readonly string[]): string {
  return path.join('\u0000');
}

function skipSpace(s: string, i: number): number {
  while (s[i] === ' ' || s[i] === '\t') i++;
  return i;
}

/** Reads `a."b c".'d'` from `start`, returning the path and the index after it and trailing space. */
function readKeyPath(s: string, start: number): { path: string[]; end: number } | undefined {
  const path: string[] = [];
  let i = skipSpace(s, start);
  for (;;) {
    const c = s[i];
    if (c === '"') {
      let j = i + 1;
      while (j < s.length && s[j] !== '"') j += s[j] === '\\' ? 2 : 1;
      if (j >= s.length) return undefined;
      try {
        path.push(JSON.parse(s.slice(i, j + 1)) as string);
      } catch {
        path.push(s.slice(i + 1, j));
      }
      i = j + 1;
    } else if (c === "'") {
      const j = s.indexOf("'", i + 1);
      if (j < 0) return undefined;
      path.push(s.slice(i + 1, j));
      i = j + 1;
    } else {
      let j = i;
      while (j < s.length && /[A-Za-z0-9_-]/.test(s[j] ?? '')) j++;
      if (j === i) return undefined;
      path.push(s.slice(i, j));
      i = j;
    }
    i = skipSpace(s, i);
    if (s[i] !== '.') return { path, end: i };
    i = skipSpace(s, i + 1);
  }
}

function closesMultiline(s: string, from: number, quote: string): boolean {
  let i = s.indexOf(quote, from);
  while (i >= 0) {
    if (quote === "'''" || !isEscaped(s, i)) return true;
    i = s.indexOf(quote, i + 1);
  }
  return false;
}

function isEscaped(s: string, i: number): boolean {
  let backslashes = 0;
  for (let j = i - 1; j >= 0 && s[j] === '\\'; j--) backslashes++;
  return backslashes % 2 === 1;
}
