// A RevocationBus that also tells `listener` about each revocation this instance publishes (not about those heard
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
    publishUserChanged: (event) => bus.publishUserChanged(event),
    subscribeUserChanged: (subscriber) => bus.subscribeUserChanged(subscriber),
    publishClientChanged: (event) => bus.publishClientChanged(event),
    subscribeClientChanged: (subscriber) => bus.subscribeClientChanged(subscriber),
    live: () => bus.live(),
    onLiveness: (subscriber) => bus.onLiveness(subscriber),
    close: () => bus.close(),
  };
}
