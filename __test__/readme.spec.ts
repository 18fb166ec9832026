// The README and docs/ as a reader meets them: every JavaScript code block runs, as written, against the
// built package, and every relative link leads to a file and heading that exist.
import test from 'ava'
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

import { TIME_SCALE } from './helpers.ts'

const repo = dirname(dirname(fileURLToPath(import.meta.url)))
const pages = ['README.md', ...readdirSync(join(repo, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)]
const text = new Map(pages.map((page) => [page, readFileSync(join(repo, page), 'utf8')]))

/** The headings' anchors as GitHub makes them (lower case, punctuation dropped, spaces to hyphens). */
function anchors(markdown: string): Set<string> {
  const out = new Set<string>()
  let code = false
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) code = !code
    const heading = code ? null : /^#+ (.*)$/.exec(line)
    if (heading) out.add(heading[1]!.toLowerCase().replace(/[^\p{L}\p{N}_\- ]/gu, '').replaceAll(' ', '-'))
  }
  return out
}

test('the README and docs have code blocks to check', (t) => {
  const count = [...text.values()].reduce((n, md) => n + [...md.matchAll(/^```(js|mjs)\n/gm)].length, 0)
  t.true(count >= 8, `${count} blocks`)
})

test('every relative link of the README and docs leads to a file and a heading that exist', (t) => {
  const broken: string[] = []
  for (const [page, md] of text) {
    const prose = md.replace(/^```[\s\S]*?^```/gm, '')
    for (const [, target] of prose.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target!)) continue
      const [file, anchor] = target!.split('#') as [string, string | undefined]
      const path = file === '' ? join(repo, page) : join(repo, dirname(page), file)
      if (!existsSync(path)) broken.push(`${page}: ${target} (no ${relative(repo, path)})`)
      else if (anchor !== undefined && !anchors(readFileSync(path, 'utf8')).has(anchor)) broken.push(`${page}: ${target} (no heading)`)
    }
  }
  t.deepEqual(broken, [])
})

for (const [page, md] of text) {
  const blocks = [...md.matchAll(/^```(js|mjs)\n([\s\S]*?)^```/gm)].map((m) => ({ lang: m[1]!, code: m[2]! }))
  for (const [i, { lang, code }] of blocks.entries()) {
    test(`${page} ${lang} block ${i + 1} runs (${code.split('\n')[0]})`, (t) => {
      const args = lang === 'mjs' ? ['--input-type=module', '-e', code] : ['-e', code]
      t.notThrows(() =>
        // From the repo, `require('procslot')` resolves to this package: the dev dependency "procslot": "file:." links it.
        execFileSync(process.execPath, args, { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 * TIME_SCALE }),
      )
    })
  }
}
