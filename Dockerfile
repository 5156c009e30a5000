# syntax=docker/dockerfile:1
# tokenwarden container image: build with
#   docker build -t tokenwarden:0.1.0 .
# Runs as an unprivileged user on a read-only root filesystem; the only writable place it
# needs is /var/lib/tokenwarden (the SQLite store, the delivery key, the first admin token).

# ---- build: compile better-sqlite3 from source, TypeScript and the web UI ----
FROM node:24-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY ui ./ui
COPY bin ./bin
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund

# ---- runtime: node, the compiled service and its production dependencies only ----
FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production \
    TOKENWARDEN_LISTEN_HOST=0.0.0.0 \
    TOKENWARDEN_LISTEN_PORT=8080 \
    TOKENWARDEN_STORE_URL=/var/lib/tokenwarden/tokenwarden.db
RUN groupadd --system --gid 10001 tokenwarden \
 && useradd --system --uid 10001 --gid tokenwarden --home-dir /var/lib/tokenwarden --no-create-home --shell /usr/sbin/nologin tokenwarden \
 && mkdir -p /var/lib/tokenwarden \
 && chown tokenwarden:tokenwarden /var/lib/tokenwarden \
 && chmod 0700 /var/lib/tokenwarden
WORKDIR /app
COPY --from=build --chown=root:root /src/package.json ./package.json
COPY --from=build --chown=root:root /src/node_modules ./node_modules
COPY --from=build --chown=root:root /src/dist ./dist
COPY --from=build --chown=root:root /src/bin ./bin
VOLUME ["/var/lib/tokenwarden"]
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.TOKENWARDEN_LISTEN_PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "/app/bin/tokenwarden.cjs"]
CMD ["serve"]
