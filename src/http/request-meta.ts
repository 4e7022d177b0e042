// Who is calling: client IP (X-Forwarded-For only behind a trusted proxy) and user agent.
import type { IncomingMessage } from 'node:http';
import type { RequestMeta } from '../audit/audit.ts';

export function requestMeta(req: IncomingMessage | undefined, headers: Headers, trustProxy: boolean): RequestMeta {
  let ipAddress = req?.socket.remoteAddress ?? null;
  if (trustProxy) {
    const forwarded = headers.get('x-forwarded-for')?.split(',')[0]?.trim();
    if (forwarded) ipAddress = forwarded;
  }
  if (ipAddress?.startsWith('::ffff:')) ipAddress = ipAddress.slice(7);
  return { ipAddress, userAgent: headers.get('user-agent') };
}
