// Who is calling: client IP (X-Forwarded-For only behind a trusted proxy) and user agent.
import type { IncomingMessage } from 'node:http';
import type { RequestMeta } from '../audit/audit.ts';

type HeaderSource = { get(name: string): string | null } | undefined;

/** Reads from the Fetch request when there is one (HTTP), else from the upgrade request (WebSocket). */
export function requestMeta(req: IncomingMessage | undefined, headers: HeaderSource, trustProxy: boolean): RequestMeta {
  const header = (name: string): string | null => {
    if (headers) return headers.get(name);
    const value = req?.headers[name];
    return (Array.isArray(value) ? value[0] : value) ?? null;
  };
  let ipAddress = req?.socket.remoteAddress ?? null;
  if (trustProxy) {
    const forwarded = header('x-forwarded-for')?.split(',')[0]?.trim();
    if (forwarded) ipAddress = forwarded;
  }
  if (ipAddress?.startsWith('::ffff:')) ipAddress = ipAddress.slice(7);
  return { ipAddress, userAgent: header('user-agent') };
}
