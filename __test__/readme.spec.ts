// Every JavaScript code block of the README runs, as written, against the built package.
import test from 'ava'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const repo = dirname(dirname(fileURLToPath(import.meta.url)))
const readme = readFileSync(join(repo, 'README.md'), 'utf8')
const blocks = [...readme.matchAll(/^```(js|mjs)\n([\s\S]*?)^```/gm)].map((m) => ({ lang: m[1]!, code: m[2]! }))

test('the README has code blocks to check', (t) => {
  t.true(blocks.length >= 3)
})

for (const [i, { lang, code }] of blocks.entries()) {
  test(`README ${lang} block ${i + 1} runs (${code.split('\n')[0]})`, (t) => {
    const args = lang === 'mjs' ? ['--input-type=module', '-e', code] : ['-e', code]
    t.notThrows(() =>
      // From the repo, `require('procslot')` resolves to this package: the dev dependency "procslot": "file:." links it.
      execFileSync(process.execPath, args, { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 }),
    )
  })
}
