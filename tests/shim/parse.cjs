// Parses PowerShell files with tree-sitter's PowerShell grammar (web-tree-sitter,
// WebAssembly: no native build, no network) and reports every ERROR and
// MISSING node. usage: node parse.cjs NODE_PREFIX FILE...  (exit 1 on any)
'use strict';
const fs = require('fs');
const path = require('path');

const prefix = process.argv[2];
const files = process.argv.slice(3);
const mod = (name) => path.join(prefix, 'node_modules', name);
const { Parser, Language } = require(require.resolve('web-tree-sitter', { paths: [prefix] }));

function report(node, kind, out) {
  out.push({ kind, row: node.startPosition.row + 1, col: node.startPosition.column + 1,
             text: node.text.split('\n')[0].slice(0, 60) });
}

// ERROR and MISSING nodes. A MISSING node of a hidden rule (e.g.
// _statement_terminator) is not among its parent's children: it is found in
// the S-expression of the innermost node that has an error.
function problems(node, out) {
  if (node.type === 'ERROR') report(node, 'ERROR', out);
  else if (node.isMissing) report(node, `MISSING ${node.type}`, out);
  let childErrors = false;
  for (let i = 0; i < node.childCount; i++) {
    const c = node.child(i);
    if (c.hasError || c.isMissing || c.type === 'ERROR') childErrors = true;
    problems(c, out);
  }
  if (node.hasError && !childErrors && node.type !== 'ERROR' && !node.isMissing) {
    const m = node.toString().match(/\(MISSING ([^\s)]+)/);
    report(node, m ? `MISSING ${m[1]}` : 'ERROR', out);
  }
  return out;
}

(async () => {
  await Parser.init();
  const lang = await Language.load(path.join(mod('tree-sitter-powershell'), 'tree-sitter-powershell.wasm'));
  const parser = new Parser();
  parser.setLanguage(lang);
  let bad = 0;
  for (const f of files) {
    const tree = parser.parse(fs.readFileSync(f, 'utf8'));
    const found = tree.rootNode.hasError ? problems(tree.rootNode, []) : [];
    if (tree.rootNode.hasError && found.length === 0) found.push({ kind: 'ERROR', row: 0, col: 0, text: '(somewhere)' });
    for (const p of found) console.log(`${f}:${p.row}:${p.col}: ${p.kind}: ${p.text}`);
    console.log(`${f}: ${found.length === 0 ? 'parses' : found.length + ' problem(s)'}`);
    bad += found.length > 0;
  }
  process.exit(bad ? 1 : 0);
})().catch((e) => { console.error(e); process.exit(2); });
