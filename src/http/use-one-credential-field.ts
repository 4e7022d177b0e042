// One credential check per request: a mutation may select at most one field that checks a password, a code or a
// refresh token, however it is spelled (aliases, inline fragments, named fragments). Without this, one request
// with fifty aliased `login` fields would try fifty passwords. Refused in validation, before anything executes.
import {
  type ASTVisitor,
  GraphQLError,
  Kind,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValidationContext,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';

export const CREDENTIAL_FIELDS: ReadonlySet<string> = new Set([
  'login',
  'register',
  'refresh',
  'resetPassword',
  'verifyEmail',
  'changePassword',
  'deleteAccount',
]);

function countCredentialFields(selectionSet: SelectionSetNode, context: ValidationContext, seen: Set<string>): number {
  let count = 0;
  for (const selection of selectionSet.selections) {
    if (selection.kind === Kind.FIELD) {
      if (CREDENTIAL_FIELDS.has(selection.name.value)) count++;
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      count += countCredentialFields(selection.selectionSet, context, seen);
    } else if (!seen.has(selection.name.value)) {
      // A fragment spread twice runs once (graphql-js merges it), so it is counted once; cycles are ended here too.
      seen.add(selection.name.value);
      const fragment = context.getFragment(selection.name.value);
      if (fragment) count += countCredentialFields(fragment.selectionSet, context, seen);
    }
  }
  return count;
}

/** The validation rule; exported for the graphql-ws path, which validates through Yoga's envelop too. */
export function oneCredentialFieldRule(context: ValidationContext): ASTVisitor {
  return {
    OperationDefinition(node: OperationDefinitionNode) {
      if (node.operation !== 'mutation') return false;
      const count = countCredentialFields(node.selectionSet, context, new Set());
      if (count > 1) {
        context.reportError(
          new GraphQLError(
            `A request may run only one of ${[...CREDENTIAL_FIELDS].join(', ')}; this one asks for ${count}.`,
            { nodes: [node], extensions: { code: 'BAD_USER_INPUT' } },
          ),
        );
      }
      return false;
    },
  };
}

export function useOneCredentialField(): Plugin {
  return {
    onValidate({ addValidationRule }) {
      addValidationRule(oneCredentialFieldRule);
    },
  };
}
