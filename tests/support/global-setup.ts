// One throwaway MariaDB for the whole run (each test file creates its own database on it).
import type { TestProject } from 'vitest/node';
import { type RunningService, serviceAvailable, startMariaDb } from './services.ts';

let mariadb: RunningService | undefined;

export async function setup(project: TestProject) {
  if (serviceAvailable('mariadbd')) {
    mariadb = await startMariaDb();
    project.provide('mariadbUrl', mariadb.url);
  } else {
    project.provide('mariadbUrl', '');
  }
}

export async function teardown() {
  await mariadb?.stop();
}

declare module 'vitest' {
  export interface ProvidedContext {
    mariadbUrl: string;
  }
}
