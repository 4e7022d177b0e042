// `npm run schema:print`: writes schema.graphql from the code.
import { writeFileSync } from 'node:fs';
import { printSchemaSdl } from './index.ts';

writeFileSync(new URL('../../schema.graphql', import.meta.url), printSchemaSdl());
console.log('wrote schema.graphql');
