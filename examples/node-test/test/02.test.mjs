import { test } from 'node:test'
import { useWorkerResources } from '../suite.mjs'

test('file 2 gets a port and a scratch database of its own', () => useWorkerResources('02'))
