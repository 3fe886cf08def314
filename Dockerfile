# Postern: small, non-root, production image. Node runs the TypeScript sources directly (type
# stripping), so there is no build step: the first stage only installs production dependencies.
FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:24-slim
# One serving process per container (the cluster of WORKERS is for machines and VMs): scale with
# replicas, each container's CPU limit being its share.
ENV NODE_ENV=production \
    WORKERS=1
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY src ./src
COPY migrations ./migrations
COPY views ./views
# uid 1000: a mounted key file (POSTERN_MASTER_KEY_FILE) must be readable by it.
USER node
# 3000: the public listener (PORT); 9464: metrics (METRICS_PORT, when set); ADMIN_PORT when set.
EXPOSE 3000 9464
# SIGTERM drains in-flight requests (SHUTDOWN_DELAY_SECONDS + SHUTDOWN_TIMEOUT_SECONDS, 0 + 20 s
# by default); give the container longer than that before it is killed (docker stop -t 30,
# compose stop_grace_period, Kubernetes terminationGracePeriodSeconds). Node itself is PID 1 and
# handles the signal: start it directly, never through npm (npm would not pass SIGTERM on).
STOPSIGNAL SIGTERM
# Reads PORT, HOST and TLS_CERT_FILE as the server does: https with the served certificate
# when Postern serves TLS. Healthy when /readyz answers 200.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["node", "bin/healthcheck.js"]
CMD ["node", "src/main.ts"]
