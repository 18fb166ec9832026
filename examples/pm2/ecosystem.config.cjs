// PM2 cluster mode: `pm2 start examples/pm2/ecosystem.config.cjs`, then `pm2 reload` it at will.
//
// PM2 gives every instance its number in NODE_APP_INSTANCE (0..instances-1); app.js takes that slot and
// no other, so instance N holds slot N while it lives, gets it back when restarted, and keeps it through
// `pm2 reload` (the new instance N waits for the old one to give it back). The slot file has exactly
// `instances` slots (PROCSLOT_FLEET), so every shard has an owner.
//
// PORT, PROCSLOT_SLOTS_FILE and DATA_DIR are taken from the environment of the `pm2` command when set.
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
      // During `pm2 reload` PM2 stops the old instance N once the new one listens, or after listen_timeout
      // if it never does. app.js listens at once (requests wait for its slot), so this is only a backstop.
      listen_timeout: 3000,
      // The old instance finishes its requests in flight and exits; past kill_timeout PM2 SIGKILLs it, and
      // its slot is free the moment it dies.
      kill_timeout: 5000,
      env: {
        PORT: process.env.PORT ?? '3000',
        // Use a file under /run/<app>/ (or a volume) for a long-lived fleet: see the README.
        PROCSLOT_SLOTS_FILE: process.env.PROCSLOT_SLOTS_FILE ?? path.join(os.tmpdir(), 'procslot-pm2-example-slots'),
        PROCSLOT_FLEET: String(instances),
        DATA_DIR: process.env.DATA_DIR ?? path.join(os.tmpdir(), 'procslot-pm2-example-data'),
      },
    },
  ],
}
