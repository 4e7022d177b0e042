// GraphQL Code Generator: typed documents (client preset, TypedDocumentNode) for the client package's operations
// (packages/client), from the printed schema. Runs on `npm ci` (prepare) and `npm run codegen`; not committed.
import type { CodegenConfig } from '@graphql-codegen/cli';

const config: CodegenConfig = {
  schema: 'schema.graphql',
  documents: ['packages/client/src/operations.graphql'],
  generates: {
    'packages/client/src/generated/': {
      preset: 'client',
      presetConfig: { fragmentMasking: false },
      config: {
        // Erasable TypeScript like the package's own sources: type-only imports, no enums, explicit `.ts` paths
        // (tsc's rewriteRelativeImportExtensions turns them into `.js` in the built package).
        useTypeImports: true,
        enumsAsTypes: true,
        importExtension: '.ts',
        scalars: { DateTime: 'string', JSON: 'unknown' },
      },
    },
  },
  silent: true,
};

export { config as default };
