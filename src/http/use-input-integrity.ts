// The rule every text argument obeys (API.md, "Input integrity"): well-formed UTF-16 and no U+0000, and an ID of
// a shape we could have issued. Checked on the coerced values of every field of the operation, whether they came
// from variables or from the document, before anything executes; field-specific rules stay in src/auth/validate.ts.
import {
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  GraphQLError,
  type GraphQLField,
  type GraphQLInputType,
  GraphQLList,
  GraphQLNonNull,
  GraphQLScalarType,
  type GraphQLSchema,
  getArgumentValues,
  getNamedType,
  getVariableValues,
  isInputObjectType,
  Kind,
  type OperationDefinitionNode,
  TypeInfo,
  visit,
  visitWithTypeInfo,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';

// Our ids are UUIDs, numbers, client ids ([a-z0-9-]) and base64url: visible ASCII, and never long. Anything else
// cannot name a row of ours, and refusing it here keeps it away from every query.
const ID_SHAPE = /^[\x21-\x7e]{0,256}$/;

/** Why `value` is refused, or undefined when it is acceptable text. */
function textFault(value: string, isId: boolean): string | undefined {
  if (!value.isWellFormed()) return 'contains a lone surrogate (not well-formed UTF-16)';
  if (value.includes('\0')) return 'contains U+0000';
  if (isId && !ID_SHAPE.test(value)) return 'is not an id this API issues';
  return undefined;
}

interface Fault {
  readonly field: string;
  readonly reason: string;
}

/** Walks a coerced value: `field` is the name of the argument or input field that holds it. */
function findFault(value: unknown, type: GraphQLInputType | undefined, field: string): Fault | undefined {
  if (value === null || value === undefined) return undefined;
  const unwrapped = type instanceof GraphQLNonNull ? type.ofType : type;
  if (typeof value === 'string') {
    const named = unwrapped ? getNamedType(unwrapped) : undefined;
    const reason = textFault(value, named instanceof GraphQLScalarType && named.name === 'ID');
    return reason ? { field, reason } : undefined;
  }
  if (Array.isArray(value)) {
    const item = unwrapped instanceof GraphQLList ? unwrapped.ofType : undefined;
    for (const element of value) {
      const fault = findFault(element, item, field);
      if (fault) return fault;
    }
    return undefined;
  }
  if (typeof value === 'object') {
    // An input object (its fields typed), or the value of a JSON-like scalar (its keys untyped).
    const fields = unwrapped && isInputObjectType(unwrapped) ? unwrapped.getFields() : undefined;
    for (const [key, inner] of Object.entries(value)) {
      const keyFault = textFault(key, false);
      if (keyFault) return { field, reason: `has a key that ${keyFault}` };
      const fault = findFault(inner, fields?.[key]?.type, key);
      if (fault) return fault;
    }
  }
  return undefined;
}

/** A field of the operation that is given arguments in the document (its definition, and its node). */
interface ArgumentSite {
  readonly definition: GraphQLField<unknown, unknown>;
  readonly node: FieldNode;
}

/** What a document's operation needs checked on each run: found once per document and operation name. */
interface Plan {
  readonly operation: OperationDefinitionNode;
  readonly sites: readonly ArgumentSite[];
}

/** The fields given arguments that the operation selects, fragments included (each fragment once). */
function planOf(schema: GraphQLSchema, document: DocumentNode, operationName: string | null | undefined) {
  const operations = document.definitions.filter(
    (definition): definition is OperationDefinitionNode => definition.kind === Kind.OPERATION_DEFINITION,
  );
  const operation = operationName ? operations.find((o) => o.name?.value === operationName) : operations[0];
  if (!operation) return undefined;
  const fragments = new Map(
    document.definitions
      .filter((d): d is FragmentDefinitionNode => d.kind === Kind.FRAGMENT_DEFINITION)
      .map((d) => [d.name.value, d]),
  );
  const sites: ArgumentSite[] = [];
  const pending: (OperationDefinitionNode | FragmentDefinitionNode)[] = [operation];
  const spread = new Set<string>();
  const typeInfo = new TypeInfo(schema);
  const visitor = visitWithTypeInfo(typeInfo, {
    Field(node) {
      const definition = typeInfo.getFieldDef();
      // Arguments the document does not give take the schema's defaults: ours, nothing to check.
      if (definition && node.arguments?.length) sites.push({ definition, node });
    },
    FragmentSpread(node) {
      const fragment = fragments.get(node.name.value);
      if (fragment && !spread.has(node.name.value)) {
        spread.add(node.name.value);
        pending.push(fragment);
      }
    },
  });
  for (let node = pending.pop(); node; node = pending.pop()) visit(node, visitor);
  return { operation, sites } satisfies Plan;
}

/** The first refused text among the arguments `plan`'s fields get from the document and `variables`. */
function findInputFault(
  schema: GraphQLSchema,
  plan: Plan,
  variables: Record<string, unknown> | null | undefined,
): Fault | undefined {
  if (plan.sites.length === 0) return undefined;
  // Values a variable cannot be coerced to are the executor's to report (a coercion error, not ours).
  const coerced = getVariableValues(schema, plan.operation.variableDefinitions ?? [], variables ?? {});
  if (coerced.errors) return undefined;
  for (const { definition, node } of plan.sites) {
    let values: Record<string, unknown>;
    try {
      values = getArgumentValues(definition, node, coerced.coerced);
    } catch {
      continue; // An invalid argument is the executor's to report.
    }
    for (const argument of definition.args) {
      const fault = findFault(values[argument.name], argument.type, argument.name);
      if (fault) return fault;
    }
  }
  return undefined;
}

const refusal = (fault: Fault) => ({
  errors: [
    new GraphQLError(`The value of ${fault.field} ${fault.reason}.`, {
      extensions: { code: 'BAD_USER_INPUT', field: fault.field },
    }),
  ],
});

/** Refuses an operation whose arguments carry text that is not well-formed, or a U+0000, before it executes. */
export function useInputIntegrity(): Plugin {
  // Per parsed document (Yoga reuses one per query text) and operation name: the walk over the document with
  // its types is done once, so a run only coerces its variables and reads the arguments of the fields that have
  // them (none for `{ me { id email } }`).
  const plans = new WeakMap<DocumentNode, Map<string, Plan | undefined>>();
  const check = (args: {
    schema: GraphQLSchema;
    document: DocumentNode;
    operationName?: string | null;
    variableValues?: Record<string, unknown> | null;
  }) => {
    let byName = plans.get(args.document);
    if (!byName) {
      byName = new Map();
      plans.set(args.document, byName);
    }
    const name = args.operationName ?? '';
    let plan = byName.get(name);
    if (plan === undefined && !byName.has(name)) {
      plan = planOf(args.schema, args.document, args.operationName);
      // Bounded: a client naming ever new operations of one document cannot grow it without end.
      if (byName.size < 16) byName.set(name, plan);
    }
    return plan ? findInputFault(args.schema, plan, args.variableValues) : undefined;
  };
  return {
    onExecute({ args, setResultAndStopExecution }) {
      const fault = check(args);
      if (fault) setResultAndStopExecution(refusal(fault));
    },
    onSubscribe({ args, setResultAndStopExecution }) {
      const fault = check(args);
      if (fault) setResultAndStopExecution(refusal(fault));
    },
  };
}
