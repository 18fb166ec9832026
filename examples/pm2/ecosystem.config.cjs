// PM2 cluster mode: `pm2 start examples/pm2/ecosystem.config.cjs`.
//
// PM2 gives every instance its number in NODE_APP_INSTANCE (0..instances-1); app.js asks for that slot
// first, so instance N holds slot N while it lives — a restarted instance N gets slot N back. The slot
// file has exactly `instances` slots (PROCSLOT_FLEET), so every shard has an owner.
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
      // During `pm2 reload`, the new instance N waits for slot N until PM2 stops the old one — which PM2
      // does once the new one listens or after listen_timeout. Keep it short: the new one cannot listen
      // before it has its slot.
      listen_timeout: 3000,
      kill_timeout: 5000,
      env: {
        PORT: '3000',
        // Use a file under /run/<app>/ (or a volume) for a long-lived fleet: see the README.
        PROCSLOT_SLOTS_FILE: path.join(os.tmpdir(), 'procslot-pm2-example-slots'),
        PROCSLOT_FLEET: String(instances),
        DATA_DIR: path.join(os.tmpdir(), 'procslot-pm2-example-data'),
      },
    },
  ],
}
