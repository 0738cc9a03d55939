# Depot: the OSB API and the operation workers (`npm start`), and the catalog controller
# (`node dist/catalog-controller/main.js`, see deploy/). See README.md.
# The build: every dependency, then the compiled JavaScript in dist/ (npm ci's prepare script
# runs `npm run build`), then the dev dependencies (tsc, test tools) pruned away.
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY osb ./osb
COPY runtime ./runtime
COPY broker ./broker
COPY testing ./testing
COPY catalog-controller ./catalog-controller
COPY migrations ./migrations
COPY bin ./bin
RUN npm ci --no-audit --no-fund && npm prune --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:20-slim
WORKDIR /app
ENV NODE_ENV=production \
    PORT=8080

# The build stage's tree: dist/, the production node_modules and the sources beside them (the
# migrations and catalogs are read from the sources; the admin CLI, `npx depot`, runs them through tsx).
COPY --from=build /app ./

# Without ENCRYPTION_KEYS, the key file is made here (docker-compose.yml keeps it on a volume).
RUN install -d -m 0700 -o node -g node /home/node/.local /home/node/.local/state /home/node/.local/state/depot
# The image's unprivileged user; the sources stay owned by root (read-only for it).
USER node
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# What `npm start` runs, without npm in between: `docker stop`'s SIGTERM reaches Depot directly.
CMD ["node", "dist/broker/main.js", "all"]
