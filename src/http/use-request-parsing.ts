// Reading the request: a JSON body must be well-formed UTF-8 (decoded strictly, so that two different invalid byte
// sequences never become the same U+FFFD text, e.g. in a password), and a request the parser refuses is the
// caller's 400 whose answer never repeats what was sent (Yoga quotes a malformed body in `originalError`).
import { GraphQLError } from 'graphql';
import { createGraphQLError, type GraphQLParams, type Plugin } from 'graphql-yoga';

const badRequest = (message: string) =>
  createGraphQLError(message, { extensions: { code: 'BAD_REQUEST', http: { status: 400 } } });

const JSON_TYPES = ['application/json', 'application/graphql+json', 'application/graphql-response+json'];

const isJsonPost = (request: Request) =>
  request.method === 'POST' &&
  JSON_TYPES.includes((request.headers.get('content-type') ?? '').split(';')[0]?.trim().toLowerCase() ?? '');

/** A JSON body, decoded as UTF-8 that must be well-formed. */
async function parseJsonBody(request: Request): Promise<GraphQLParams> {
  // Reading may fail with Yoga's own 413 (the body size limit): that answer passes unchanged.
  const bytes = await request.arrayBuffer();
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
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

export function useRequestParsing(): Plugin {
  return {
    onRequestParse({ request, requestParser, setRequestParser }) {
      if (isJsonPost(request)) {
        setRequestParser(parseJsonBody);
        return;
      }
      if (!requestParser) return;
      setRequestParser(async (request) => {
        try {
          return await requestParser(request);
        } catch (error) {
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
