// `graphql-auth-client/operations`: the typed documents (TypedDocumentNode) of the operations the package ships,
// generated from operations.graphql, for Apollo Client, urql or any client that understands typed documents.
export * from './generated/graphql.ts';
