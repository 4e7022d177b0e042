// Bench child: node:http answering every request with one fixed JSON body, read to its end first. No GraphQL, no
// token, no database: what is left of a row's latency tail (p99 ÷ p50) under the bench's load is the machine's
// (the load generator on the same CPUs, the scheduler), which no server can go below.
import { createServer } from 'node:http';
import { listenUntilStopped } from './children.ts';

const ANSWER = JSON.stringify({ data: { me: { id: 'fixed', email: 'fixed@example.com' } } });

const server = createServer((request, response) => {
  request.resume();
  request.once('end', () => {
    response.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(ANSWER) });
    response.end(ANSWER);
  });
});
await listenUntilStopped(server);
