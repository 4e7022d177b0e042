// GraphQL Code Generator: typed documents (client preset, TypedDocumentNode) for the client SDK's operations,
// from the printed schema. Runs on `npm ci` (prepare) and `npm run codegen`; the output is not committed.
import type { CodegenConfig } from '@graphql-codegen/cli';

const config: CodegenConfig = {
  schema: 'schema.graphql',
  documents: ['src/client/operations.graphql'],
  generates: {
    'src/client/generated/': {
      preset: 'client',
      presetConfig: { fragmentMasking: false },
      config: {
        // Node runs the output as TypeScript directly: type-only imports, no enums, explicit `.ts` paths.
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
