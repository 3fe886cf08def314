# Postern: small, non-root, production image. Node runs the TypeScript sources directly (type
# stripping), so there is no build step: the first stage only installs production dependencies.
FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:24-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY src ./src
COPY migrations ./migrations
COPY views ./views
USER node
# 3000: public listener; 9464: METRICS_PORT when set.
EXPOSE 3000 9464
# SIGTERM drains in-flight requests (SHUTDOWN_TIMEOUT_SECONDS, default 20 s); give the container
# longer than that before it is killed (docker stop -t 30, Kubernetes terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s CMD node -e "fetch('http://127.0.0.1:3000/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "src/main.ts"]
