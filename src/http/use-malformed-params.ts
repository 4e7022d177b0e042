// A GET (or form) request whose `variables` or `extensions` parameter is not JSON is the caller's mistake:
// Yoga's parser lets the SyntaxError escape, which would be masked as INTERNAL_SERVER_ERROR; it is a 400.
import { createGraphQLError, type Plugin } from 'graphql-yoga';

export function useMalformedParams(): Plugin {
  return {
    onRequestParse({ requestParser, setRequestParser }) {
      if (!requestParser) return;
      setRequestParser(async (request) => {
        try {
          return await requestParser(request);
        } catch (error) {
          if (!(error instanceof SyntaxError)) throw error;
          throw createGraphQLError('The variables or extensions parameter is not valid JSON.', {
            extensions: { code: 'BAD_REQUEST', http: { status: 400 } },
          });
        }
      });
    },
  };
}
