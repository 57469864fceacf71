# One image for every process of the platform. docker-compose.yml picks the command per service:
#
#   tsx gateway/main.ts | tsx subgraphs/auth/main.ts | tsx subgraphs/tenant/main.ts
#   tsx subgraphs/location/main.ts | tsx bridge/main.ts | tsx tools/migrate.ts
#   tsx tools/cognito-local/init-pool.ts        (cognito-local only, development)
#
# The project runs TypeScript through tsx (no compile step), exactly as `npm run dev` and the tests do.
#
#   docker build -t fleet-platform .
#   docker run --rm --env-file .env fleet-platform tsx gateway/main.ts

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

# tsx and the other CLIs on PATH; @aws-sdk v3 warns at every start that its releases after
# January 2027 need Node 22 (silenced); no update checks or telemetry from the Prisma CLI.
ENV PATH=/app/node_modules/.bin:$PATH \
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true \
    CHECKPOINT_DISABLE=1 \
    PRISMA_HIDE_UPDATE_MESSAGE=1

# The source stays owned by root: the processes can read it, not change it.
USER node

EXPOSE 4000 4001 4002 4003 4004
CMD ["tsx", "gateway/main.ts"]
