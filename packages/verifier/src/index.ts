// graphql-auth-verifier: verifies graphql-auth-server access tokens with live revocation (work in progress).
export {};
