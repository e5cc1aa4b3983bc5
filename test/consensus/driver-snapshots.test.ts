import { afterEach, describe, expect, it, onTestFailed } from 'vitest'
import { createMultiRaft, DriverClosedError, type Snapshot } from '../../consensus/index.js'
import { type TestCluster as Cluster, RecordingStateMachine, TestCluster } from './driver-harness.js'
import { seededRandom } from './harness.js'

const SEED = Number(process.env.SEED ?? 31_337)
const bytes = (s: string) => new TextEncoder().encode(s)

/** A recording state machine whose snapshot installs for one group wait until the test opens a gate. */
class GatedStateMachine extends RecordingStateMachine {
  /** Signals of the installs that reached the gate. */
  readonly waiting: AbortSignal[] = []
  private open!: () => void
  private readonly gate = new Promise<void>((resolve) => {
    this.open = resolve
  })

  constructor(private readonly gated: string) {
    super()
  }

  release(): void {
    this.open()
  }

  override async applySnapshot(
    snapshot: Snapshot,
    group: string,
    options?: { signal?: AbortSignal },
  ): Promise<void> {
    if (group === this.gated) {
      const signal = options?.signal
      if (!signal) throw new Error('the driver passed no abort signal to applySnapshot')
      this.waiting.push(signal)
      await Promise.race([
        this.gate,
        new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
      ])
    }
    super.applySnapshot(snapshot, group)
  }
}

let cluster: TestCluster | undefined
afterEach(async () => {
  await cluster?.close()
  cluster = undefined
})

/**
 * a leads g0 and g1 on a, b, c; c is cut off while a commits 60 entries to g0, so a's log is
 * compacted past c's and c must be sent a snapshot of g0 once the links heal. c's state machine
 * holds that install at its gate.
 */
async function laggingFollower(): Promise<{ c: Cluster; sm: GatedStateMachine }> {
  onTestFailed(() => console.error(`driver snapshot test failed with SEED=${SEED}`))
  const c = new TestCluster(['a', 'b', 'c'], SEED, { snapshotEveryEntries: 20, snapshotKeepEntries: 5 })
  cluster = c
  const sm = new GatedStateMachine('g0')
  c.member('c').sm = sm
  const names = c.createGroups(2)
  const a = c.member('a')
  for (const g of names) a.driver.campaign(g)
  await c.tickUntil(() => names.every((g) => c.agreedLeader(g) === 'a'), 50, 'a leads both groups')
  c.hub.cutLink('a', 'c')
  c.hub.cutLink('b', 'c')
  for (let i = 0; i < 60; i++) await a.driver.propose('g0', bytes(`e${i}`))
  expect(a.store.open('g0').firstIndex()).toBeGreaterThan(30)
  c.hub.heal()
  await c.tickUntil(() => sm.waiting.length === 1, 50, "c's snapshot install reached the gate")
  return { c, sm }
}

describe('MultiRaft driver snapshot installs', () => {
  it('keeps the other groups committing and applying while one group installs a snapshot', async () => {
    const { c, sm } = await laggingFollower()
    const a = c.member('a')
    const terms = ['g0', 'g1'].map((g) => a.driver.status(g).term)
    for (let i = 0; i < 10; i++) {
      const done = a.driver.propose('g1', bytes(`f${i}`))
      await c.settle()
      await done
    }
    // c's turns go on: it applies g1 while g0's install is still blocked.
    await c.tickUntil(() => sm.payloads('g1').length === 10, 50, 'c applied g1')
    expect(sm.payloads('g1')).toEqual(a.sm.payloads('g1'))
    expect(sm.payloads('g0')).toEqual([])
    // g0 itself keeps committing with a and b, and many heartbeat intervals pass without an election.
    for (let i = 60; i < 65; i++) await a.driver.propose('g0', bytes(`e${i}`))
    for (let i = 0; i < 40; i++) await c.tickAll()
    expect(['g0', 'g1'].map((g) => a.driver.status(g).term)).toEqual(terms)
    expect(c.agreedLeader('g0')).toBe('a')
    expect(sm.payloads('g0')).toEqual([])
    sm.release()
    await c.tickUntil(() => sm.payloads('g0').length === 65, 50, 'c caught up on g0')
    expect(sm.payloads('g0')).toEqual(a.sm.payloads('g0'))
    expect(sm.snapshotsApplied).toBe(1)
    // and goes on replicating normally
    await a.driver.propose('g0', bytes('after'))
    await c.tickUntil(() => sm.payloads('g0').length === 66, 20, 'c applied a new entry')
  })

  it('aborts a blocked install when the group is removed, and when the driver closes', async () => {
    const { c, sm } = await laggingFollower()
    const member = c.member('c')
    await member.driver.removeGroup('g0')
    expect(sm.waiting[0]!.aborted).toBe(true)
    expect(member.driver.groups()).toEqual(['g1'])
    // The same again, this time ended by close(): it resolves instead of waiting for the gate.
    const { c: c2, sm: sm2 } = await laggingFollower()
    await c2.member('c').driver.close()
    expect(sm2.waiting[0]!.aborted).toBe(true)
    expect(sm2.waiting[0]!.reason).toBeInstanceOf(DriverClosedError)
    await c.close()
  })

  it("installs the log store's snapshot on restart into a state machine that is behind it", async () => {
    const { c, sm } = await laggingFollower()
    sm.release()
    await c.tickUntil(() => sm.payloads('g0').length === 60, 50, 'c caught up on g0')
    const a = c.member('a')
    await a.driver.close()
    // A state machine that keeps nothing across restarts (like the _system catalog): applied = 0.
    const fresh = new RecordingStateMachine()
    const driver = createMultiRaft({
      id: 'a',
      transport: c.hub.endpoint('a'),
      logStore: a.store,
      random: seededRandom(SEED + 1),
      incarnation: new Uint8Array([9, 9, 9, 9, 9, 9, 9, 9]),
    })
    driver.createGroup('g0', { stateMachine: fresh })
    a.driver = driver
    await c.tickUntil(() => fresh.payloads('g0').length === 60, 50, 'restarted a rebuilt g0')
    expect(fresh.snapshotsApplied).toBe(1)
    expect(fresh.payloads('g0')).toEqual(sm.payloads('g0'))
  })

  it('accepts a state machine that is ahead of the log commit index (it installed a newer copy)', async () => {
    const { c, sm } = await laggingFollower()
    sm.release()
    await c.tickUntil(() => sm.payloads('g0').length === 60, 50, 'c caught up on g0')
    const member = c.member('c')
    await member.driver.close()
    const commit = member.store.open('g0').initialState().hardState.commit
    const driver = createMultiRaft({
      id: 'c',
      transport: c.hub.endpoint('c'),
      logStore: member.store,
      random: seededRandom(SEED + 2),
      incarnation: new Uint8Array([7, 7, 7, 7, 7, 7, 7, 7]),
    })
    // Raft's applied point cannot pass commit: the driver resumes Raft at commit instead of failing.
    driver.createGroup('g0', { stateMachine: sm, applied: commit + 10 })
    member.driver = driver
    expect(driver.status('g0').applied).toBe(commit)
  })
})
