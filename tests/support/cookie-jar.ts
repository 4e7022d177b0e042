// A browser's cookie jar in miniature for Node's fetch (which keeps none): what a credentialed browser request
// would send and store, for one host. Enough for the SDK's cookie mode under Node: names, values, Max-Age=0.
export interface CookieJar {
  /** fetch that sends the jar's cookies and stores every Set-Cookie of the answer (as `credentials: 'include'`). */
  readonly fetch: typeof fetch;
  /** The current value of cookie `name`, if any. */
  get(name: string): string | undefined;
}

export function cookieJar(): CookieJar {
  const cookies = new Map<string, string>();
  const jarFetch: typeof fetch = async (input, init) => {
    const headers = new Headers(init?.headers);
    if (cookies.size > 0) headers.set('cookie', [...cookies].map(([name, value]) => `${name}=${value}`).join('; '));
    const response = await fetch(input, { ...init, headers });
    for (const header of response.headers.getSetCookie()) {
      const [pair = '', ...attributes] = header.split(';').map((part) => part.trim());
      const at = pair.indexOf('=');
      const name = pair.slice(0, at);
      if (attributes.some((attribute) => /^max-age=0$/i.test(attribute))) cookies.delete(name);
      else cookies.set(name, pair.slice(at + 1));
    }
    return response;
  };
  return { fetch: jarFetch, get: (name) => cookies.get(name) };
}
