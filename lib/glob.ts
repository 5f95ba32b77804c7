/**
 * Shell-style globs for Kubernetes object names (namespaces, service accounts).
 *
 * Names never contain `/`, so there is no path logic: `*` matches any run of
 * characters (including none), `?` exactly one, and `[abc]` / `[a-z]` / `[!a-z]`
 * one character from (or not from) a class. Every other character matches
 * itself. A pattern may only use characters that can appear in a Kubernetes
 * name (`a-z`, `0-9`, `-`, `.`) besides the glob operators, so a typo such as
 * `Team-*` is reported instead of silently matching nothing.
 *
 * Hand-rolled rather than a dependency: the grammar is tiny, and general glob
 * libraries bring path semantics (dotfiles, `/`, braces, extglobs) that names
 * do not have.
 */
import { ConfigError } from './errors.ts';

/** Characters that can appear in a DNS-1123 label or subdomain. */
const NAME_CHAR = /^[a-z0-9.-]$/;
const GLOB_OPERATOR = /[*?[\]]/;

/** True when `pattern` uses a glob operator (`*`, `?` or a `[...]` class), false for a plain name. */
export function isGlob(pattern: string): boolean {
  return GLOB_OPERATOR.test(pattern);
}

type Compiled = { readonly source: string } | { readonly error: string };

function describeChar(c: string): string {
  return JSON.stringify(c);
}

/** Escapes one name character for use in a RegExp (inside or outside a class). */
function escapeChar(c: string): string {
  return c === '.' || c === '-' ? `\\${c}` : c;
}

function compileClass(pattern: string, open: number): { source: string; end: number } | { error: string } {
  const close = pattern.indexOf(']', open + 1);
  if (close === -1) return { error: `unbalanced "[" at position ${open}` };
  let body = pattern.slice(open + 1, close);
  let negate = false;
  if (body.startsWith('!') || body.startsWith('^')) {
    negate = true;
    body = body.slice(1);
  }
  if (body === '') return { error: `empty character class at position ${open}` };
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c === '[') return { error: `"[" inside a character class at position ${open + 1 + i}` };
    if (!NAME_CHAR.test(c)) {
      return { error: `character ${describeChar(c)} cannot appear in a Kubernetes name` };
    }
    // `a-z` is a range; a `-` first or last in the class is literal.
    const to = body[i + 2];
    if (body[i + 1] === '-' && to !== undefined) {
      if (!NAME_CHAR.test(to))
        return { error: `character ${describeChar(to)} cannot appear in a Kubernetes name` };
      if (to < c) return { error: `reversed range "${c}-${to}" in character class at position ${open}` };
      out += `${escapeChar(c)}-${escapeChar(to)}`;
      i += 2;
    } else {
      out += escapeChar(c);
    }
  }
  return { source: `[${negate ? '^' : ''}${out}]`, end: close };
}

function compile(pattern: string): Compiled {
  if (pattern === '') return { error: 'empty pattern' };
  let source = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') {
      // Consecutive stars mean the same as one; collapsing them keeps the RegExp linear.
      while (pattern[i + 1] === '*') i++;
      source += '.*';
    } else if (c === '?') {
      source += '.';
    } else if (c === '[') {
      const cls = compileClass(pattern, i);
      if ('error' in cls) return cls;
      source += cls.source;
      i = cls.end;
    } else if (c === ']') {
      return { error: `unbalanced "]" at position ${i}` };
    } else if (NAME_CHAR.test(c)) {
      source += escapeChar(c);
    } else {
      return { error: `character ${describeChar(c)} cannot appear in a Kubernetes name` };
    }
  }
  return { source: `${source}$` };
}

/**
 * Describes what is wrong with a glob, or returns `undefined` when it is valid.
 * Used by the configuration schema to report the exact field.
 *
 * @example globSyntaxError('team-[ab') // 'unbalanced "[" at position 5'
 */
export function globSyntaxError(pattern: string): string | undefined {
  const compiled = compile(pattern);
  return 'error' in compiled ? compiled.error : undefined;
}

/**
 * The length of the shortest name a valid `pattern` matches: every token but
 * `*` stands for exactly one character. A glob whose shortest match is longer
 * than any name of its kind can only ever match nothing, so the schema rejects it.
 *
 * @example shortestMatch('team-[ab]*') // 6
 */
export function shortestMatch(pattern: string): number {
  return pattern.replace(/\[[^\]]*\]/g, '?').replaceAll('*', '').length;
}

const cache = new Map<string, RegExp>();

/**
 * Compiles a glob to an anchored RegExp. Throws {@link ConfigError} for an
 * invalid pattern (configuration is validated before this is reached, so that
 * is a programming error rather than a user one).
 */
export function compileGlob(pattern: string): RegExp {
  const cached = cache.get(pattern);
  if (cached) return cached;
  const compiled = compile(pattern);
  if ('error' in compiled)
    throw new ConfigError(`invalid glob ${JSON.stringify(pattern)}: ${compiled.error}`);
  const re = new RegExp(compiled.source);
  // Patterns come from the configuration, so the cache stays small.
  cache.set(pattern, re);
  return re;
}

/**
 * True when `name` matches `pattern`. A pattern without glob operators is an
 * exact name.
 *
 * @example matchesGlob('team-a-dev', 'team-a*') // true
 */
export function matchesGlob(name: string, pattern: string): boolean {
  if (!isGlob(pattern)) return name === pattern;
  return compileGlob(pattern).test(name);
}

/** True when `name` matches at least one of `patterns` (names or globs). */
export function matchesAnyGlob(name: string, patterns: readonly string[]): boolean {
  return patterns.some((pattern) => matchesGlob(name, pattern));
}
