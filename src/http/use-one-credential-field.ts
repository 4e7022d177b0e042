// One credential check per request: a mutation may select at most one field marked as checking a password, a code
// or a refresh token (schema/marks.ts), however it is spelled (aliases, inline fragments, named fragments). Without this, one request
// with fifty aliased `login` fields would try fifty passwords. Refused in validation, before anything executes.
import { type ASTVisitor, GraphQLError, type OperationDefinitionNode, type ValidationContext } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { rootFields } from './root-fields.ts';

/** The validation rule; exported for the graphql-ws path, which validates through Yoga's envelop too. */
export function oneCredentialFieldRule(context: ValidationContext): ASTVisitor {
  return {
    OperationDefinition(node: OperationDefinitionNode) {
      if (node.operation !== 'mutation') return false;
      const checks = rootFields(context.getSchema(), node, (name) => context.getFragment(name) ?? undefined).filter(
        (field) => field.marks.credentialCheck,
      );
      if (checks.length > 1) {
        const names = [...new Set(checks.map((field) => field.name))].join(', ');
        context.reportError(
          new GraphQLError(
            `A request may check only one credential (password, code or refresh token); this one asks for ${checks.length} (${names}).`,
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
