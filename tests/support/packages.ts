// Packing this repository's workspace packages as npm would publish them, and installing a tarball into a
// fresh project outside the repository, the way an app's developer would (from the registry, through npm's cache).
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');

function npm(args: string[], cwd: string): string {
  return execFileSync('npm', args, {
    cwd,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    // A fresh project must not inherit this repository's workspace settings or an npm_config_* of the test run.
    env: Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^npm_/i.test(name))),
    maxBuffer: 64 * 1024 * 1024,
  });
}

export interface PackedPackage {
  /** The tarball's absolute path. */
  readonly tarball: string;
  /** The paths the tarball holds, relative to the package (e.g. dist/index.js). */
  readonly files: readonly string[];
}

/** `npm pack` of a workspace (its `prepack` runs, as on publish) into `destination`. */
export function packWorkspace(workspace: string, destination: string): PackedPackage {
  const output = npm(['pack', '--workspace', workspace, '--pack-destination', destination, '--json'], ROOT);
  // Lifecycle scripts may print before the JSON report.
  const [report] = JSON.parse(output.slice(output.indexOf('['))) as { filename: string; files: { path: string }[] }[];
  if (!report) throw new Error(`npm pack ${workspace} reported nothing`);
  return { tarball: join(destination, report.filename), files: report.files.map((file) => file.path) };
}

/** Makes `dir` an ESM project and installs `specs` (tarballs, name@range) into it, preferring npm's cache. */
export function installProject(dir: string, specs: readonly string[]): void {
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'fresh-app', private: true, type: 'module' }));
  npm(['install', '--prefer-offline', '--no-audit', '--no-fund', '--no-package-lock', ...specs], dir);
}

/** The name of every package installed under `dir`/node_modules, nested ones included. */
export function installedPackages(dir: string): Set<string> {
  const names = new Set<string>();
  const walk = (modules: string) => {
    if (!existsSync(modules)) return;
    for (const entry of readdirSync(modules)) {
      if (entry.startsWith('.')) continue;
      const scoped = entry.startsWith('@');
      for (const name of scoped ? readdirSync(join(modules, entry)).map((n) => `${entry}/${n}`) : [entry]) {
        names.add(name);
        walk(join(modules, name, 'node_modules'));
      }
    }
  };
  walk(join(dir, 'node_modules'));
  return names;
}
