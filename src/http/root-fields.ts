// The root fields an operation selects, however they are spelled (aliases, inline fragments, named fragments),
// with the marks their schema definitions carry: the one walker behind the transport's per-field rules.
import {
  type FragmentDefinitionNode,
  type GraphQLSchema,
  Kind,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from 'graphql';
import { type FieldMarks, marksOf } from '../schema/marks.ts';

export interface RootField {
  /** The field's name in the schema. */
  readonly name: string;
  /** Its key in the response: the alias, or the name. */
  readonly responseKey: string;
  readonly marks: FieldMarks;
}

/**
 * Every root field selection of `operation`, in document order. A named fragment spread more than once runs once
 * (graphql-js merges it), so it is walked once; that also ends fragment cycles.
 */
export function rootFields(
  schema: GraphQLSchema,
  operation: OperationDefinitionNode,
  fragment: (name: string) => FragmentDefinitionNode | undefined,
): RootField[] {
  const fields = schema.getRootType(operation.operation)?.getFields() ?? {};
  const found: RootField[] = [];
  const seen = new Set<string>();
  const walk = (selectionSet: SelectionSetNode) => {
    for (const selection of selectionSet.selections) {
      if (selection.kind === Kind.FIELD) {
        const name = selection.name.value;
        found.push({ name, responseKey: selection.alias?.value ?? name, marks: marksOf(fields[name]) });
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        walk(selection.selectionSet);
      } else if (!seen.has(selection.name.value)) {
        seen.add(selection.name.value);
        const definition = fragment(selection.name.value);
        if (definition) walk(definition.selectionSet);
      }
    }
  };
  walk(operation.selectionSet);
  return found;
}

/** The fragment lookup of a parsed document (the validation context has its own). */
export function fragmentsOf(document: { definitions: readonly { kind: string }[] }) {
  const byName = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) {
      const fragment = definition as FragmentDefinitionNode;
      byName.set(fragment.name.value, fragment);
    }
  }
  return (name: string) => byName.get(name);
}
