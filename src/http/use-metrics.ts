// Feeds Metrics from Yoga: HTTP requests and latencies, GraphQL operations, and sign-in outcomes read off the
// results of the fields marked as sign-ins in the schema; serves GET /metrics (behind a bearer token when
// METRICS_TOKEN is set).
import { createHash, timingSafeEqual } from 'node:crypto';
import {
  type DocumentNode,
  type ExecutionResult,
  type GraphQLSchema,
  getOperationAST,
  type OperationDefinitionNode,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { extensionsOf } from '../schema/errors.ts';
import type { SignInKind } from '../schema/marks.ts';
import type { Metrics, OperationType } from './metrics.ts';
import { fragmentsOf, rootFields } from './root-fields.ts';

/** Paths reported as they are; anything else is "other", so scanners cannot grow the label set. */
const ROUTES = new Set([
  '/graphql',
  '/healthz',
  '/readyz',
  '/metrics',
  '/.well-known/jwks.json',
  '/.well-known/oauth-authorization-server',
]);

const digest = (value: string) => createHash('sha256').update(value).digest();

/** Response keys of the sign-in fields (marked in the schema) that the operation selects, with their kind. */
function signInFields(schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode) {
  const found = new Map<string, SignInKind>();
  for (const field of rootFields(schema, operation, fragmentsOf(document))) {
    if (field.marks.signIn) found.set(field.responseKey, field.marks.signIn);
  }
  return found;
}

function countSignIns(
  metrics: Metrics,
  schema: GraphQLSchema,
  document: DocumentNode,
  name: string | undefined,
  result: ExecutionResult,
) {
  const operation = getOperationAST(document, name);
  if (operation?.operation !== 'mutation') return;
  for (const [key, kind] of signInFields(schema, document, operation)) {
    if (result.data?.[key] != null) {
      metrics.countSignIn(kind, 'success');
      continue;
    }
    const error = result.errors?.find((e) => e.path?.[0] === key);
    if (!error) continue; // not executed (an earlier field of a serial mutation failed the request)
    const extensions = extensionsOf(error) as { code?: unknown; reason?: unknown };
    const reason = kind === 'refresh' && typeof extensions?.reason === 'string' ? extensions.reason : undefined;
    metrics.countSignIn(
      kind,
      reason ?? (typeof extensions?.code === 'string' ? extensions.code : 'INTERNAL_SERVER_ERROR'),
    );
  }
}

export interface MetricsOptions {
  /** When set, GET /metrics requires `Authorization: Bearer <token>`. */
  readonly token?: string | undefined;
}

export function useMetrics(metrics: Metrics, options: MetricsOptions = {}): Plugin {
  // When each request started, and its route (read once from the URL Yoga already parsed).
  const started = new WeakMap<Request, { at: number; route: string }>();
  const expected = options.token === undefined ? undefined : digest(`Bearer ${options.token}`);

  return {
    onRequest({ request, url, endResponse, fetchAPI }) {
      started.set(request, { at: performance.now(), route: ROUTES.has(url.pathname) ? url.pathname : 'other' });
      if (url.pathname !== '/metrics') return;
      if (request.method !== 'GET') {
        endResponse(new fetchAPI.Response(null, { status: 405, headers: { allow: 'GET' } }));
        return;
      }
      if (expected && !timingSafeEqual(digest(request.headers.get('authorization') ?? ''), expected)) {
        endResponse(
          new fetchAPI.Response('unauthorized\n', { status: 401, headers: { 'www-authenticate': 'Bearer' } }),
        );
        return;
      }
      return metrics.registry.metrics().then((body) => {
        endResponse(
          new fetchAPI.Response(body, {
            status: 200,
            headers: { 'content-type': metrics.registry.contentType, 'cache-control': 'no-store' },
          }),
        );
      });
    },
    onResponse({ request, response }) {
      const start = started.get(request);
      if (start === undefined) return;
      metrics.observeHttp(request.method, start.route, response.status, (performance.now() - start.at) / 1000);
    },
    onExecute({ args }) {
      const start = performance.now();
      const operation = getOperationAST(args.document, args.operationName);
      const type = (operation?.operation ?? 'query') as OperationType;
      const name = args.operationName ?? operation?.name?.value ?? undefined;
      return {
        onExecuteDone({ result }) {
          if (!('data' in result || 'errors' in result)) return; // incremental delivery: not used here
          const single = result as ExecutionResult;
          const outcome = single.errors?.length ? 'error' : 'success';
          metrics.observeOperation(name, type, outcome, (performance.now() - start) / 1000);
          countSignIns(metrics, args.schema, args.document, args.operationName ?? undefined, single);
        },
      };
    },
    onSubscribe({ args }) {
      const operation = getOperationAST(args.document, args.operationName);
      const name = args.operationName ?? operation?.name?.value ?? undefined;
      return {
        onSubscribeResult({ result }) {
          const failed = 'errors' in result && Boolean((result as ExecutionResult).errors?.length);
          metrics.observeOperation(name, 'subscription', failed ? 'error' : 'success');
        },
      };
    },
  };
}
