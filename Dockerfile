# One image, two jobs: `coder-metrics controller` and the injected
# `coder-metrics exporter` sidecar. Node 24 LTS, non-root, and nothing is
# written at run time, so it runs with readOnlyRootFilesystem: true.
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY controller ./controller
RUN npx tsc -p tsconfig.build.json && npm prune --omit=dev --ignore-scripts

FROM node:24-bookworm-slim
ENV NODE_ENV=production
# A larger young generation: both jobs allocate briefly and a lot. The injected
# sidecar gets its own NODE_OPTIONS, sized to its memory limit
# (controller/desired/exporter-heap.ts).
ENV NODE_OPTIONS=--max-semi-space-size=16
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
# The uid the controller's injected sidecar runs as (runAsUser: 65532).
USER 65532:65532
EXPOSE 8080 2113
ENTRYPOINT ["node", "/app/dist/controller/cli.js"]
CMD ["controller"]
