// Compiles the ava suite (__test__/**/*.ts) to JavaScript in __test_js__/, for a Node.js that cannot load
// the suite's TypeScript loader (@oxc-node/core has no build for every platform the package ships: none
// for linux-arm64 in the version the suite uses). Each file is transpiled on its own, as the loader does
// (the suite is written for isolatedModules), with its `.ts` imports rewritten to `.js`; types are checked
// by `tsc --noEmit`, not here. The output sits beside __test__/ at the same depth, so the specs' paths
// (`../index.js`, the repository from `import.meta.url`) are the same; the fixtures that are not TypeScript
// are linked, not copied.
//
// Usage: node .github/scripts/compile-suite.mjs   (from the repository; prints the number of files)
import { mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const repo = dirname(dirname(dirname(fileURLToPath(import.meta.url))))
const ts = createRequire(join(repo, 'package.json'))('typescript')
const from = join(repo, '__test__')
const to = join(repo, '__test_js__')

const compilerOptions = {
  module: ts.ModuleKind.ESNext,
  target: ts.ScriptTarget.ES2022,
  rewriteRelativeImportExtensions: true,
}

rmSync(to, { recursive: true, force: true })
let files = 0
for (const entry of readdirSync(from, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile()) continue
  const source = join(entry.parentPath, entry.name)
  const rel = relative(from, source)
  mkdirSync(dirname(join(to, rel)), { recursive: true })
  if (rel.endsWith('.ts')) {
    const { outputText, diagnostics } = ts.transpileModule(readFileSync(source, 'utf8'), {
      compilerOptions,
      fileName: source,
      reportDiagnostics: true,
    })
    if (diagnostics?.length) {
      throw new Error(`${rel}: ${ts.flattenDiagnosticMessageText(diagnostics[0].messageText, '\n')}`)
    }
    writeFileSync(join(to, rel.replace(/\.ts$/, '.js')), outputText)
    files++
  } else {
    symlinkSync(relative(dirname(join(to, rel)), source), join(to, rel))
  }
}
// The specs are ES modules (ava's `extensions: { ts: 'module' }`); the fixtures keep their own .cjs/.py.
writeFileSync(join(to, 'package.json'), '{ "type": "module" }\n')
console.log(`compiled ${files} TypeScript files of __test__/ to __test_js__/`)
