// Reading a request body under a size limit, for every route that reads one whole (GraphQL's JSON bodies, the token
// endpoint's form): an oversized body is refused as soon as that is known, never buffered past the limit.

/**
 * The body's bytes, or undefined when it is longer than `limit` bytes. A Content-Length over the limit is refused
 * unread. With one within it, the HTTP parser ends the body there, so it is read whole (no counting stream); without
 * one (chunked) it is read chunk by chunk, and reading stops once past the limit.
 */
export async function readBodyAtMost(request: Request, limit: number): Promise<Uint8Array | undefined> {
  const declared = request.headers.get('content-length');
  if (declared !== null && Number(declared) > limit) return undefined;
  if (!request.body) return new Uint8Array();
  if (declared !== null) {
    const bytes = new Uint8Array(await request.arrayBuffer());
    // A Request made in-process has a header no parser enforced.
    return bytes.byteLength > limit ? undefined : bytes;
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = request.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}
