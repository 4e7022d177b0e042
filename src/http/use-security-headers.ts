// Security headers on every response: an API's (nothing may frame, sniff, cache or embed it) and, for the
// GraphiQL page, a Content-Security-Policy that lets exactly that page's scripts, styles and workers run.
import { createHash } from 'node:crypto';
import type { Plugin } from 'graphql-yoga';

const API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/**
 * The CSP of a GraphiQL page: 'self' for the bundle, stylesheet and Monaco workers that use-graphiql.ts serves,
 * plus its inline scripts by hash and any CDN origins it loads from (Yoga's stock page takes them from unpkg.com
 * and runs its workers as blob: URLs).
 */
export function graphiqlCsp(html: string): string {
  const hashes = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map(
    (match) =>
      `'sha256-${createHash('sha256')
        .update(match[1] as string)
        .digest('base64')}'`,
  );
  const origins = [...new Set([...html.matchAll(/https:\/\/[a-z0-9.-]+/g)].map((match) => match[0]))];
  const cdn = origins.join(' ');
  return [
    "default-src 'none'",
    `script-src 'self' ${hashes.join(' ')} ${cdn}`,
    // GraphiQL and Monaco set styles from script.
    `style-src 'self' 'unsafe-inline' ${cdn}`,
    `font-src 'self' data: ${cdn}`,
    `img-src 'self' data: ${cdn}`,
    // 'self' covers the page's HTTP and same-host WebSocket (CSP 3) requests; the CDN, the workers' source.
    `connect-src 'self' ${cdn}`,
    "worker-src 'self' blob:",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; ');
}

export interface SecurityHeadersOptions {
  /** The CSP of the GraphiQL page, once it has been rendered. */
  readonly graphiqlCsp: () => string | undefined;
  /** Sends Strict-Transport-Security (when the public URL is https). */
  readonly hsts: boolean;
}

export function useSecurityHeaders(options: SecurityHeadersOptions): Plugin {
  return {
    onResponse({ response }) {
      const headers = response.headers;
      const html = headers.get('content-type')?.startsWith('text/html') ?? false;
      headers.set('content-security-policy', (html && options.graphiqlCsp()) || API_CSP);
      headers.set('x-content-type-options', 'nosniff');
      headers.set('x-frame-options', 'DENY');
      headers.set('referrer-policy', 'no-referrer');
      headers.set('cross-origin-opener-policy', 'same-origin');
      // Public documents (JWKS, metadata: `*` CORS) stay readable by any origin; everything else stays home.
      const shared = headers.get('access-control-allow-origin') === '*';
      headers.set('cross-origin-resource-policy', shared ? 'cross-origin' : 'same-origin');
      // GraphQL responses carry tokens and personal data: never stored by a browser or a proxy.
      if (!headers.has('cache-control')) headers.set('cache-control', 'no-store');
      if (options.hsts) headers.set('strict-transport-security', 'max-age=31536000; includeSubDomains');
    },
  };
}
