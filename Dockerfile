# syntax=docker/dockerfile:1
# Production image: Node 24 runs the TypeScript sources directly (type stripping); no build step beyond npm ci.

# --- build: install with dev dependencies (npm ci's `prepare` generates and builds the client package, a
# workspace that npm ci needs present), then drop them.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json codegen.ts schema.graphql ./
COPY packages/client ./packages/client
RUN npm ci --no-audit --no-fund
COPY src ./src
COPY migrations ./migrations
# The `node` devDependency (a Node binary for npm scripts), codegen, test tools: none of it ships; nor does the
# client package (the server never imports it; its workspace link would dangle in the runtime image).
RUN npm prune --omit=dev --no-audit --no-fund && rm -f node_modules/graphql-auth-client

# --- runtime: the same base, the production node_modules and the sources, as the unprivileged `node` user.
FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production \
    PORT=4000 \
    HOST=0.0.0.0 \
    DATA_DIR=/app/data
WORKDIR /app
COPY --from=build --chown=node:node /app/package.json ./
COPY --from=build --chown=node:node /app/node_modules ./node_modules
COPY --from=build --chown=node:node /app/src ./src
COPY --from=build --chown=node:node /app/migrations ./migrations
RUN mkdir -p /app/data && chown node:node /app/data
USER node
EXPOSE 4000
# Ready means the database (and Redis, when configured) answers; see GET /readyz.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:4000/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# src/main.ts applies pending migrations, then serves; SIGTERM drains and closes cleanly.
CMD ["node", "src/main.ts"]
