import { test } from 'node:test'
import { useWorkerResources } from '../suite.mjs'

test('file 4 gets a port and a scratch database of its own', () => useWorkerResources('04'))
