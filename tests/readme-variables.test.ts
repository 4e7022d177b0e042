// Every environment variable the configuration reads (src/config.ts's schema) has a row in the README's
// configuration tables, so an operator reading them sees every knob (REDIS_SENTINELS and its companions were
// missing once). A row may abbreviate a family: `GRAPHQL_MAX_DEPTH`, `_ALIASES` stands for GRAPHQL_MAX_ALIASES.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const root = new URL('..', import.meta.url);

/** The variables named in the first cell of the README's table rows, abbreviations spelled out. */
function documented(): Set<string> {
  const names = new Set<string>();
  for (const line of readFileSync(new URL('README.md', root), 'utf8').split('\n')) {
    if (!line.startsWith('|')) continue;
    const first = line.split('|')[1] ?? '';
    let previous = '';
    for (const [, token] of first.matchAll(/`([A-Z_][A-Z0-9_]*)`/g)) {
      const name = token?.startsWith('_') ? `${previous.slice(0, previous.lastIndexOf('_'))}${token}` : (token ?? '');
      names.add(name);
      if (!token?.startsWith('_')) previous = name;
    }
  }
  return names;
}

describe('README configuration table', () => {
  it('has a row for every variable the configuration reads', () => {
    const source = readFileSync(new URL('src/config.ts', root), 'utf8');
    const schema = source.slice(
      source.indexOf('const schema = z.object({'),
      source.indexOf('\n});', source.indexOf('const schema = z.object({')),
    );
    const read = [...schema.matchAll(/^ {2}([A-Z][A-Z0-9_]+):/gm)].map((match) => match[1] as string);
    expect(read.length).toBeGreaterThan(40);
    const table = documented();
    expect(read.filter((name) => !table.has(name))).toEqual([]);
  });
});
