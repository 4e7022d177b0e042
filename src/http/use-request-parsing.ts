// Reading the request: a body is never longer than the one size limit, a JSON body must be well-formed UTF-8
// (decoded strictly, so that two different invalid byte sequences never become the same U+FFFD text, e.g. in a
// password), and a request the parser refuses is the caller's 400 whose answer never repeats what was sent (Yoga
// quotes a malformed body in `originalError`).
import { GraphQLError } from 'graphql';
import { createGraphQLError, type GraphQLParams, type Plugin } from 'graphql-yoga';
import { readBodyAtMost } from './request-body.ts';

const badRequest = (message: string) =>
  createGraphQLError(message, { extensions: { code: 'BAD_REQUEST', http: { status: 400 } } });

const JSON_TYPES = ['application/json', 'application/graphql+json', 'application/graphql-response+json'];

const isJsonPost = (request: Request) =>
  request.method === 'POST' &&
  JSON_TYPES.includes((request.headers.get('content-type') ?? '').split(';')[0]?.trim().toLowerCase() ?? '');

const tooLarge = () =>
  createGraphQLError('Request body too large', {
    extensions: { code: 'REQUEST_ENTITY_TOO_LARGE', http: { status: 413 } },
  });

// Only a single non-negative integer is a Content-Length (a list of them is a request-smuggling attempt).
const CONTENT_LENGTH = /^\d+$/;

/**
 * The body's declared length: undefined when it has none (chunked), 413 past `limit`, 400 when malformed. The
 * same rules as Yoga's own limit, which this replaces (see useRequestParsing).
 */
function declaredLength(request: Request, limit: number): number | undefined {
  const header = request.headers.get('content-length');
  if (header === null) return undefined;
  if (!CONTENT_LENGTH.test(header)) throw badRequest('Content-Length header is invalid.');
  const length = Number(header);
  if (length > limit) throw tooLarge();
  return length;
}

/** The Fetch API the server runs on (Node's request bodies are its ponyfill streams, not the global ones). */
type FetchApi = Pick<typeof globalThis, 'Request' | 'TransformStream' | 'ReadableStream'>;

/**
 * A copy of `request` whose body stream errors with 413 once more than `limit` bytes have come through it
 * (`exceeded` is called then).
 */
function bounded(request: Request, limit: number, fetchApi: FetchApi, exceeded?: () => void): Request {
  const body = request.body;
  if (!body) return request;
  let read = 0;
  // As Yoga does: a native stream (a Request made in-process) goes through the native TransformStream.
  const Transform = body instanceof ReadableStream ? TransformStream : fetchApi.TransformStream;
  const limited = body.pipeThrough(
    new Transform<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        read += chunk.byteLength;
        if (read > limit) {
          exceeded?.();
          controller.error(tooLarge());
        } else controller.enqueue(chunk);
      },
    }),
  );
  return new fetchApi.Request(request.url, {
    method: request.method,
    headers: request.headers,
    signal: request.signal,
    body: limited,
    duplex: 'half',
  } as RequestInit);
}

// One decoder for every body: decode() without `stream` keeps no state between calls.
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/**
 * A JSON body of at most `limit` bytes (413 past it), decoded as UTF-8 that must be well-formed. Read without a
 * counting stream: Yoga's TransformStream and its pipeline cost every JSON POST about a tenth of its time.
 */
async function parseJsonBody(request: Request, limit: number): Promise<GraphQLParams> {
  declaredLength(request, limit);
  const bytes = await readBodyAtMost(request, limit);
  if (!bytes) throw tooLarge();
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch {
    throw badRequest('The request body is not valid UTF-8.');
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw badRequest('The request body is not valid JSON.');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw badRequest('The request body must be a JSON object.');
  }
  return body as GraphQLParams;
}

/**
 * Parses every request body within `maxBodyBytes` (413 `REQUEST_ENTITY_TOO_LARGE` past it, 400 for a malformed
 * Content-Length): Yoga's own limit must be off (`maxRequestBodySize: false`), since this one takes its place.
 */
export function useRequestParsing({ maxBodyBytes }: { maxBodyBytes: number }): Plugin {
  return {
    onRequestParse({ request, requestParser, setRequestParser, fetchAPI }) {
      if (isJsonPost(request)) {
        setRequestParser((request) => parseJsonBody(request, maxBodyBytes));
        return;
      }
      if (!requestParser) return;
      setRequestParser(async (request) => {
        let over = false;
        try {
          // Other bodies (form, multipart, application/graphql) are counted as they arrive.
          const length = request.body ? declaredLength(request, maxBodyBytes) : undefined;
          return await requestParser(
            request.body && length === undefined
              ? bounded(request, maxBodyBytes, fetchAPI, () => {
                  over = true;
                })
              : request,
          );
        } catch (error) {
          // Yoga's multipart parser turns any failure of the body into its own 400: past the limit it is 413.
          if (over) throw tooLarge();
          // A GET (or form) request whose `variables` or `extensions` parameter is not JSON.
          if (error instanceof SyntaxError)
            throw badRequest('The variables or extensions parameter is not valid JSON.');
          // Anything else the parser refuses keeps its status and code, never the text it quoted.
          if (error instanceof GraphQLError && !error.extensions.originalError) throw error;
          if (error instanceof GraphQLError) {
            const { originalError: _dropped, ...extensions } = error.extensions;
            throw createGraphQLError(error.message, { extensions });
          }
          throw error;
        }
      });
    },
  };
}
