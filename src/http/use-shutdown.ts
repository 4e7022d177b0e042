// Ends every subscription stream when the server shuts down: an SSE response then finishes cleanly (its
// "complete" event, then the end of the body) instead of being reset when the process exits.
import type { Plugin } from 'graphql-yoga';

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}

/** `source`, done as soon as `signal` aborts (the source is told to return, without waiting for it). */
export function endOnAbort<T>(source: AsyncIterable<T>, signal: AbortSignal): AsyncGenerator<T> {
  const iterator = source[Symbol.asyncIterator]();
  let finished = false;
  const finish = async (value?: unknown): Promise<IteratorResult<T>> => {
    if (!finished) {
      finished = true;
      // A source blocked in next() may settle that promise late; its return() must not hold up the shutdown.
      void Promise.resolve(iterator.return?.(value)).catch(() => undefined);
    }
    return { done: true, value: undefined };
  };
  const wrapper: AsyncGenerator<T> = {
    async next() {
      if (finished || signal.aborted) return finish();
      // One abort listener per call, removed after it: racing every call against one long-lived promise would
      // pile up reactions on it for as long as the subscription lives.
      let onAbort: () => void = () => {};
      const aborted = new Promise<IteratorResult<T>>((resolve) => {
        onAbort = () => resolve({ done: true, value: undefined });
        signal.addEventListener('abort', onAbort, { once: true });
      });
      try {
        const step = await Promise.race([iterator.next(), aborted]);
        return step.done ? finish() : step;
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
    },
    return: (value) => finish(value),
    async throw(error) {
      await finish();
      throw error;
    },
    [Symbol.asyncIterator]() {
      return wrapper;
    },
    async [Symbol.asyncDispose]() {
      await finish();
    },
  };
  return wrapper;
}

/** Every subscription (SSE or WebSocket) ends when `signal` aborts. */
export function useShutdown(signal: AbortSignal): Plugin {
  return {
    onSubscribe() {
      return {
        onSubscribeResult({ result, setResult }) {
          if (isAsyncIterable(result)) setResult(endOnAbort(result, signal) as never);
        },
      };
    },
  };
}
