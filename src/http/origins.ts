// Which browser origins may call with credentials: the one place that decides it, for the CORS headers and for
// requests that read the refresh cookie. Its sources are read on every decision, so a later source (clients'
// allowedOrigins) joins without a restart.
import type { CORSOptions } from 'graphql-yoga';

/** Origins allowed besides the built-in ones, as of now (e.g. CORS_ORIGINS, or enabled clients' allowedOrigins). */
export type OriginSource = () => Iterable<string> | Promise<Iterable<string>>;

export interface OriginPolicyOptions {
  /** Outside production, http://localhost:<any port> and http://127.0.0.1:<any port> are allowed too. */
  readonly production: boolean;
  /** The service's own origin (PUBLIC_URL): its pages are same-origin, never cross-site. */
  readonly publicUrl: string;
  readonly sources: readonly OriginSource[];
}

export interface OriginPolicy {
  /** Whether `origin` (an Origin header's value) may call with credentials. */
  allows(origin: string): Promise<boolean>;
}

/** The origin of a URL as browsers write it in the Origin header (`scheme://host[:port]`), or undefined. */
export function originOf(value: string): string | undefined {
  if (!URL.canParse(value)) return undefined;
  const url = new URL(value);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  return url.origin;
}

const isLoopback = (origin: string): boolean => {
  const url = new URL(origin);
  return url.protocol === 'http:' && (url.hostname === 'localhost' || url.hostname === '127.0.0.1');
};

export function createOriginPolicy(options: OriginPolicyOptions): OriginPolicy {
  const own = originOf(options.publicUrl);
  return {
    async allows(origin) {
      // Only an origin in its exact serialised form: "null", paths, user info or odd spellings never match.
      if (originOf(origin) !== origin) return false;
      if (origin === own) return true;
      if (!options.production && isLoopback(origin)) return true;
      for (const source of options.sources) {
        for (const allowed of await source()) if (allowed === origin) return true;
      }
      return false;
    },
  };
}

/** Request headers a browser may send cross-origin, besides the CORS-safelisted ones. */
const ALLOWED_HEADERS = [
  'authorization',
  'content-type',
  'x-graphql-yoga-csrf',
  'apollo-require-preflight',
  'x-request-id',
];

/**
 * Yoga's `cors` option for `endpoint`: an allowed origin gets itself in Access-Control-Allow-Origin with credentials; any other
 * gets no CORS header at all (its preflight answers 204 without them, which a browser takes as a refusal).
 */
export function corsOptions(
  policy: OriginPolicy,
  endpoint: string,
): (request: Request) => Promise<CORSOptions | false> {
  return async (request) => {
    const origin = request.headers.get('origin');
    if (origin === null) return false;
    // The API alone: public documents (the JWKS, the metadata) keep their own `*`, which caches may share.
    if (new URL(request.url).pathname !== endpoint || !(await policy.allows(origin))) return false;
    return {
      origin,
      credentials: true,
      methods: ['GET', 'POST', 'OPTIONS'],
      allowedHeaders: ALLOWED_HEADERS,
      exposedHeaders: ['x-request-id'],
      maxAge: 600,
    };
  };
}
