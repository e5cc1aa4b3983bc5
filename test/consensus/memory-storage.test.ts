import { MemoryStorage } from '../../consensus/index.js'
import { storageCompliance } from './storage-compliance.js'

storageCompliance('MemoryStorage', () => new MemoryStorage())
