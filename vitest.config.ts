import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two cores: keep workers bounded so suites that spawn processes do not starve each other.
    maxWorkers: 2,
  },
})
