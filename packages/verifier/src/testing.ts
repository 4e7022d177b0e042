// Test helpers for services that trust graphql-auth-server tokens (work in progress).
export {};
