import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: {
          name: 'local',
          include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
        },
      },
      {
        // The API conformance suite again, against 3 storage node processes behind a router
        // (test/helpers/shoal.ts reads SHOAL_TARGET).
        extends: true,
        test: {
          name: 'cluster',
          include: ['test/*.test.ts'],
          exclude: [
            // These start their own `shoal dev --single` process or edit a local store's files:
            // the target does not apply to them.
            'test/aws-cli.test.ts',
            'test/boto3.test.ts',
            'test/cli-restart.test.ts',
            'test/local-store-restart.test.ts',
            // Nothing in them depends on the target.
            'test/toolchain.test.ts',
            'test/deploy-manifests.test.ts',
            // Cluster tests start their own clusters.
            'test/cluster-*.test.ts',
            'test/admin-drain*.test.ts',
          ],
          env: { SHOAL_TARGET: 'cluster' },
          // A cluster per file: 3 processes to start and elect before the first request, then every
          // write through Raft on a machine shared with other work.
          hookTimeout: 180_000,
          testTimeout: 180_000,
        },
      },
    ],
  },
});
