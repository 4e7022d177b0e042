// OpenTelemetry tracing, on only when OTEL_EXPORTER_OTLP_ENDPOINT is set: the Node SDK exporting over OTLP/HTTP
// (JSON), spans for GraphQL operations from use-tracing.ts. Off, nothing here is loaded or started.
import type { NodeSDKConfiguration } from '@opentelemetry/sdk-node';
import type { Plugin } from 'graphql-yoga';
import type { TelemetryConfig } from '../config.ts';

type SpanExporter = NodeSDKConfiguration['traceExporter'];
type ReadableSpan = Parameters<SpanExporter['export']>[0][number];

export interface Tracing {
  /** For the Yoga plugin list (server.ts). */
  readonly plugin: Plugin;
  /** Sends the spans still buffered, then stops the SDK. */
  shutdown(): Promise<void>;
}

/** Exception events keep their type, not their text: an error's message can quote SQL or what a client sent. */
function withoutExceptionText(span: ReadableSpan): ReadableSpan {
  if (!span.events.some((event) => event.name === 'exception')) return span;
  const events = span.events.map((event) => {
    if (event.name !== 'exception' || !event.attributes) return event;
    const { 'exception.message': _message, 'exception.stacktrace': _stack, ...kept } = event.attributes;
    return { ...event, attributes: kept };
  });
  // Every other field is read from the span itself.
  return Object.create(span, { events: { value: events } }) as ReadableSpan;
}

function scrubbing(exporter: SpanExporter): SpanExporter {
  return {
    export: (spans, done) => exporter.export(spans.map(withoutExceptionText), done),
    shutdown: () => exporter.shutdown(),
    forceFlush: () => exporter.forceFlush?.() ?? Promise.resolve(),
  };
}

/** Starts the SDK (loaded only now, so a service without tracing pays nothing for it). */
export async function startTracing(config: TelemetryConfig): Promise<Tracing> {
  const [{ NodeSDK }, { OTLPTraceExporter }, { trace }, { useTracing }] = await Promise.all([
    import('@opentelemetry/sdk-node'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/api'),
    import('./use-tracing.ts'),
  ]);
  const exporter = new OTLPTraceExporter({ url: `${config.endpoint}/v1/traces` });
  // No automatic instrumentations: the GraphQL spans are what this service has to say; HTTP and driver spans
  // would carry URLs and statements.
  const sdk = new NodeSDK({
    serviceName: config.serviceName,
    traceExporter: scrubbing(exporter),
    instrumentations: [],
  });
  sdk.start();
  return {
    plugin: useTracing(trace.getTracerProvider(), config.serviceName),
    shutdown: () => sdk.shutdown(),
  };
}
