// Who is calling: client IP (from X-Forwarded-For only behind trusted proxies, counted from the right) and
// user agent.
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import type { RequestMeta } from '../audit/audit.ts';

type HeaderSource = { get(name: string): string | null } | undefined;

/** A bare IPv4 or IPv6 address in its usual form (IPv4-mapped IPv6 as IPv4), or null for anything else. */
export function normalizeIp(value: string | null | undefined): string | null {
  if (!value) return null;
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(value);
  const address = mapped ? (mapped[1] as string) : value;
  return isIP(address) ? address.toLowerCase() : null;
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
  return { ipAddress: forwarded ?? socketAddress, userAgent: header('user-agent') };
}
