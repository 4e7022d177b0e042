import { defineConfig } from 'vitest/config';

export default defineConfig({
  // graphql 16 ships CJS and ESM builds; Node (and so Yoga and Pothos) loads the CJS one. Vite would pick the
  // ESM one for our sources, and two GraphQLError classes would break `instanceof`: use one build everywhere.
  resolve: { alias: [{ find: /^graphql$/, replacement: 'graphql/index.js' }] },
  test: {
    include: ['tests/**/*.test.ts'],
    globalSetup: ['tests/support/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
