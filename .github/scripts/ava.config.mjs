export default { files: ['__test_js__/**/*.spec.js'], workerThreads: false, timeout: '5m' }
