// The Yoga plugin that turns each GraphQL operation into a span (name `<type>.<operationName>`): never the
// document, the variables, the result or resolver arguments, which can hold passwords, codes and tokens.
import { useOpenTelemetry } from '@envelop/opentelemetry';
import { SpanKind, type TracerProvider } from '@opentelemetry/api';
import type { Plugin } from 'graphql-yoga';

export function useTracing(provider: TracerProvider, serviceName: string): Plugin {
  return useOpenTelemetry(
    { document: false, variables: false, result: false, resolvers: false, defaultResolvers: false },
    provider,
    SpanKind.SERVER,
    {},
    serviceName,
  ) as Plugin;
}
