// PM2 cluster mode: `pm2 start examples/pm2/ecosystem.config.cjs`.
//
// PM2 gives every instance its number in NODE_APP_INSTANCE (0..instances-1); app.js asks for that slot
// first, so instance N holds slot N while it lives — a restarted instance N gets slot N back.
const os = require('node:os')
const path = require('node:path')

const instances = 4

module.exports = {
  apps: [
    {
      name: 'procslot-pm2-example',
      script: path.join(__dirname, 'app.js'),
      exec_mode: 'cluster',
      instances,
      instance_var: 'NODE_APP_INSTANCE', // PM2's default, spelled out: app.js reads it
      kill_timeout: 5000,
      env: {
        PORT: '3000',
        PROCSLOT_SLOTS_FILE: path.join(os.tmpdir(), 'procslot-pm2-example-slots'),
        // Twice the instances: during `pm2 reload` a new process starts before the old one stops, and
        // takes a spare slot meanwhile (the old one keeps its slot until it is gone).
        PROCSLOT_SLOTS: String(instances * 2),
        DATA_DIR: path.join(os.tmpdir(), 'procslot-pm2-example-data'),
      },
    },
  ],
}
