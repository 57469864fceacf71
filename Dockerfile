# One image for every process of the platform. docker-compose.yml picks the command per service:
#
#   node --import tsx gateway/main.ts | … subgraphs/{auth,tenant,location}/main.ts | … bridge/main.ts
#   node --import tsx tools/migrate.ts | … tools/cognito-local/init-pool.ts (cognito-local only)
#
# The project runs TypeScript through tsx's loader (no compile step), as `npm run dev` and the tests
# do; `node --import tsx` rather than the tsx CLI, which would run the real process as its own
# child and relay signals to it.
#
# NODE_ENV=production: every process refuses the example secrets of .env.example (lib/config.ts).
# Outside a container the subgraphs and the bridge listen on loopback; here set HOST=0.0.0.0 so
# the gateway (and a health check from another container) can reach them, as docker-compose.yml does.
#
#   docker build -t fleet-platform .
#   docker run --rm --env-file .env -p 4000:4000 fleet-platform node --import tsx gateway/main.ts

ARG NODE_IMAGE=node:20-bookworm-slim
FROM ${NODE_IMAGE}

WORKDIR /app

# Dependencies first, so that a source change does not reinstall them. `--ignore-scripts`: no
# dependency needs its install script here (none ran where the project is developed either: the
# Prisma engines it would download are never used, see tools/prisma-generate.mjs), and the
# package's own postinstall needs the source, so it runs below, after the copy.
# devDependencies stay: the prisma CLI generates the client and cognito-local is the emulator that
# docker-compose.yml runs from this same image.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force

COPY . .
# What `npm ci`'s postinstall does: generate the Prisma client into generated/prisma (no network).
# Then the folders that compose mounts named volumes on: a new volume takes its owner from the
# image, so the non-root user below can write to them.
RUN node tools/prisma-generate.mjs \
 && mkdir -p /var/lib/fleet/cognito-local /var/lib/fleet/cognito-ids \
 && chown -R node:node /var/lib/fleet

# Set only now: `npm ci` above needs the devDependencies that NODE_ENV=production would omit.
# tsx and the other CLIs on PATH; @aws-sdk v3 warns at every start that its releases after
# January 2027 need Node 22 (silenced); no update checks or telemetry from the Prisma CLI.
ENV NODE_ENV=production \
    PATH=/app/node_modules/.bin:$PATH \
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true \
    CHECKPOINT_DISABLE=1 \
    PRISMA_HIDE_UPDATE_MESSAGE=1

# The source stays owned by root: the processes can read it, not change it.
USER node

# The gateway's public port. The subgraphs (4001-4003), the bridge's status port (4004) and the
# gateway's metrics port (4005) are for the internal network only.
EXPOSE 4000
CMD ["node", "--import", "tsx", "gateway/main.ts"]
