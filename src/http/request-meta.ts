// Who is calling: client IP (from X-Forwarded-For only behind trusted proxies, counted from the right) and
// user agent.
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import type { RequestMeta } from '../audit/audit.ts';

type HeaderSource = { get(name: string): string | null } | undefined;

/** The longest user agent kept (the column's width): the rest is cut, here, once for every consumer. */
export const MAX_USER_AGENT_LENGTH = 512;

/**
 * A bare IPv4 or IPv6 address in one canonical form, or null for anything else: IPv6 compressed and lower-cased
 * (RFC 5952, as WHATWG URL writes it), without a zone, and IPv4-mapped IPv6 in any spelling as the IPv4 address,
 * so one client is one key however a proxy writes it. With a port (`1.2.3.4:80`) it is not an address.
 */
export function normalizeIp(value: string | null | undefined): string | null {
  if (!value) return null;
  const address = value.trim().split('%')[0] as string;
  const kind = isIP(address);
  if (kind === 4) return address;
  if (kind !== 6) return null;
  const canonical = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (!mapped) return canonical;
  const [high, low] = [Number.parseInt(mapped[1] as string, 16), Number.parseInt(mapped[2] as string, 16)];
  return [high >> 8, high & 0xff, low >> 8, low & 0xff].join('.');
}

/**
 * The address `trustedProxies` proxies vouch for. Each proxy appends the address it received the request from,
 * so the right-most entries are written by our own proxies and everything further left by the client: the
 * N-th entry from the right is the client as our outermost proxy saw it. Fewer entries than proxies (a proxy
 * that did not append, or was bypassed) falls back to the left-most one; a value that is not an IP address
 * falls back to the socket's address.
 */
export function forwardedClient(header: string | null, trustedProxies: number): string | null {
  if (!header || trustedProxies < 1) return null;
  const entries = header
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  if (entries.length === 0) return null;
  return normalizeIp(entries[Math.max(0, entries.length - trustedProxies)]);
}

/** Reads from the Fetch request when there is one (HTTP), else from the upgrade request (WebSocket). */
export function requestMeta(
  req: IncomingMessage | undefined,
  headers: HeaderSource,
  trustedProxies: number,
): RequestMeta {
  const header = (name: string): string | null => {
    if (headers) return headers.get(name);
    const value = req?.headers[name];
    // Node joins repeated X-Forwarded-For headers with ", ", in arrival order; an array only for set-cookie.
    return (Array.isArray(value) ? value.join(', ') : value) ?? null;
  };
  const socketAddress = normalizeIp(req?.socket.remoteAddress);
  const forwarded = trustedProxies > 0 ? forwardedClient(header('x-forwarded-for'), trustedProxies) : null;
  const userAgent = header('user-agent');
  return { ipAddress: forwarded ?? socketAddress, userAgent: userAgent?.slice(0, MAX_USER_AGENT_LENGTH) ?? null };
}
