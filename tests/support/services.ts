// The throwaway servers of tools/services.ts, and whether a suite may skip when a binary is missing.
import { findBinary } from '../../tools/services.ts';

export * from '../../tools/services.ts';

/** True when tests must fail rather than skip because a service binary is missing (set by .ci/run). */
export const servicesRequired = process.env.TEST_REQUIRE_SERVICES === '1';

/** Says whether a suite that needs `binary` can run; fails loudly when services are required. */
export function serviceAvailable(binary: string): boolean {
  if (findBinary(binary)) return true;
  const message = `${binary} not found: install it (apt-get install -y mariadb-server redis-server chromium) to run this suite`;
  if (servicesRequired) throw new Error(message);
  console.warn(`skipping: ${message}`);
  return false;
}
