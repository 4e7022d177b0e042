// Debian's Chromium through playwright-core, headless in a throwaway profile, allowed to reach only the origins
// a test names (anything else would be a CDN or a leak, and fails the request).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium } from 'playwright-core';
import { findBinary } from './services.ts';

export interface Browser {
  readonly context: BrowserContext;
  close(): Promise<void>;
}

/** Launches Chromium; requests to anything but `allowedPrefixes` (and blob:/data:) are aborted. */
export async function launchChromium(allowedPrefixes: readonly string[]): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), 'auth-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: findBinary('chromium'),
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const allowed = [...allowedPrefixes, 'blob:', 'data:'];
  await context.route(
    (url) => !allowed.some((prefix) => url.href.startsWith(prefix)),
    (route) => route.abort(),
  );
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
