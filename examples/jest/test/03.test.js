'use strict'

const { useWorkerResources } = require('../suite.js')

test('file 3 gets a port and a scratch database of its own', () => useWorkerResources('03'))
