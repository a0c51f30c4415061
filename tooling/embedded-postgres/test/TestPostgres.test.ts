import { describe, expect, it } from "@effect/vitest"
import pg from "pg"
import setup from "../src/TestPostgres.js"

const withEnv = async <A>(value: string | undefined, f: () => Promise<A>): Promise<A> => {
  const saved = process.env.TEST_DATABASE_URL
  if (value === undefined) delete process.env.TEST_DATABASE_URL
  else process.env.TEST_DATABASE_URL = value
  try {
    return await f()
  } finally {
    if (saved === undefined) delete process.env.TEST_DATABASE_URL
    else process.env.TEST_DATABASE_URL = saved
  }
}

describe("TestPostgres (the vitest global setup)", () => {
  it("keeps a given TEST_DATABASE_URL", () =>
    withEnv("postgres://someone@db.example:5432/postgres", async () => {
      const teardown = await setup()
      expect(process.env.TEST_DATABASE_URL).toBe("postgres://someone@db.example:5432/postgres")
      await teardown()
    }))

  it("TEST_DATABASE_URL=embedded: one embedded Postgres for the run, stopped by the teardown", () =>
    withEnv("embedded", async () => {
      const teardown = await setup()
      const url = process.env.TEST_DATABASE_URL!
      expect(url).toMatch(/^postgres:\/\/postgres:postgres@127\.0\.0\.1:\d+\/postgres$/)
      const client = new pg.Client({ connectionString: url })
      await client.connect()
      expect((await client.query("SHOW fsync")).rows).toEqual([{ fsync: "off" }])
      await client.end()
      await teardown()
      expect(process.env.TEST_DATABASE_URL).toBe("embedded")
      const after = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 })
      after.on("error", () => undefined)
      await expect(after.connect()).rejects.toThrow()
    }), 120_000)
})
