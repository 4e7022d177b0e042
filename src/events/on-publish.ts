// A RevocationBus that also tells `listener` about each event this instance publishes (not about events heard
// from other instances), e.g. for counting revocations once across a fleet.
import type { RevocationBus, RevocationListener } from './revocation-bus.ts';

export function onPublish(bus: RevocationBus, listener: RevocationListener): RevocationBus {
  return {
    async publish(event) {
      await bus.publish(event);
      listener(event);
    },
    deliverLocally: (event) => bus.deliverLocally(event),
    subscribe: (subscriber) => bus.subscribe(subscriber),
    close: () => bus.close(),
  };
}
