// The document GraphiQL opens with: a first session in three steps (register, me, logout), so a newcomer sees
// how tokens travel before reading any documentation.

export const GRAPHIQL_EXAMPLE = `# Welcome! Three steps to a first session:
#
# 1. Run "Register" (or change it to login with the same input).
# 2. Copy its accessToken into the Headers tab below as
#      { "Authorization": "Bearer <accessToken>" }
#    then run "Me". Subscriptions (sessionRevoked) use the same header over WebSocket.
# 3. Run "Logout": the token stops working at once.

mutation Register {
  register(input: { email: "ada@example.com", password: "correct horse battery", displayName: "Ada" }) {
    accessToken
    accessTokenExpiresAt
    refreshToken
    user {
      id
      email
    }
  }
}

query Me {
  me {
    id
    email
    sessions {
      id
      userAgent
      current
    }
  }
}

mutation Logout {
  logout
}
`;
