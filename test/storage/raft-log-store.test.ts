import { join } from 'node:path'
import { openRaftLogStore } from '../../storage/index.js'
import { logStoreCompliance } from '../consensus/log-store-compliance.js'
import { tempDir } from './helpers.js'

logStoreCompliance('LibSQL raft.db', async () => {
  const { dir, remove } = await tempDir()
  return { open: () => openRaftLogStore({ path: join(dir, 'raft.db') }), durable: true, cleanup: remove }
})
