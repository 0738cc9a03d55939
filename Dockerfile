# Depot: the OSB API and the operation workers (`npm start`), and the catalog controller
# (`node --import tsx catalog-controller/main.ts`, see deploy/). See README.md.
FROM node:20-slim

WORKDIR /app
ENV NODE_ENV=production \
    PORT=8080

# Dependencies first, so they are cached until package*.json change. tsx runs the
# TypeScript sources directly; dev dependencies (tsc, test tools) are not needed.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

COPY tsconfig.json ./
COPY osb ./osb
COPY runtime ./runtime
COPY broker ./broker
COPY testing ./testing
COPY migrations ./migrations
COPY catalog-controller ./catalog-controller
COPY bin ./bin

# Without ENCRYPTION_KEYS, the key file is made here (docker-compose.yml keeps it on a volume).
RUN install -d -m 0700 -o node -g node /home/node/.local /home/node/.local/state /home/node/.local/state/depot
# The image's unprivileged user; the sources stay owned by root (read-only for it).
USER node
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# What `npm start` runs, without npm in between: `docker stop`'s SIGTERM reaches Depot directly.
CMD ["node", "--import", "tsx", "broker/main.ts", "all"]
