// npm ci refuses a lock file that lacks an optional dependency of any platform. The registry these machines
// use serves only some of Biome's platform binaries, so an `npm install` here writes a lock without the others:
// catch that before CI does.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const lock = JSON.parse(readFileSync(new URL('../package-lock.json', import.meta.url), 'utf8')) as {
  packages: Record<string, { optionalDependencies?: Record<string, string>; version?: string }>;
};

describe('package-lock.json', () => {
  it('lists every optional platform package of every locked package (else npm ci fails on other machines)', () => {
    const missing: string[] = [];
    for (const [path, entry] of Object.entries(lock.packages)) {
      for (const name of Object.keys(entry.optionalDependencies ?? {})) {
        const base = path ? `${path}/node_modules/${name}` : `node_modules/${name}`;
        const hoisted = `node_modules/${name}`;
        if (!lock.packages[base] && !lock.packages[hoisted])
          missing.push(`${name} (optional dependency of ${path || 'the root'})`);
      }
    }
    // Add each missing entry back by hand: { version, cpu, os, libc?, optional: true, dev: true } as in its package.json.
    expect(missing).toEqual([]);
  });
});
