// tests/deploy/k8s_schema.mjs: validates Kubernetes objects (a JSON array on
// stdin) against the API schemas of the npm packages kubernetes-models and
// @kubernetes-models/keda. Run by check.sh with NODE_PATH-less module
// resolution from the directory it installed them into (argv[2]).
import { readFileSync } from 'fs';
import { createRequire } from 'module';
import path from 'path';
import { pathToFileURL } from 'url';

const base = process.argv[2];
const models = {
  'v1/ConfigMap': ['kubernetes-models/v1/ConfigMap', 'ConfigMap'],
  'v1/Secret': ['kubernetes-models/v1/Secret', 'Secret'],
  'v1/Service': ['kubernetes-models/v1/Service', 'Service'],
  'apps/v1/Deployment': ['kubernetes-models/apps/v1/Deployment', 'Deployment'],
  'policy/v1/PodDisruptionBudget': ['kubernetes-models/policy/v1/PodDisruptionBudget', 'PodDisruptionBudget'],
  'batch/v1/Job': ['kubernetes-models/batch/v1/Job', 'Job'],
  'keda.sh/v1alpha1/ScaledObject': ['@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject', 'ScaledObject'],
  'keda.sh/v1alpha1/TriggerAuthentication': ['@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication', 'TriggerAuthentication'],
};
const require = createRequire(path.join(base, 'package.json'));
const docs = JSON.parse(readFileSync(0, 'utf8'));
let bad = 0;
for (const d of docs) {
  const key = `${d.apiVersion}/${d.kind}`;
  const m = models[key];
  if (!m) { console.log(`${key} ${d.metadata?.name}: no schema known for this kind`); bad++; continue; }
  // the packages are ES modules: resolve the file, then import it
  const pkgDir = path.dirname(require.resolve(m[0].startsWith('@') ? m[0].split('/').slice(0, 2).join('/') + '/package.json' : m[0].split('/')[0] + '/package.json'));
  const sub = m[0].startsWith('@') ? m[0].split('/').slice(2).join('/') : m[0].split('/').slice(1).join('/');
  const mod = await import(pathToFileURL(path.join(pkgDir, sub + '.js')).href);
  try {
    new mod[m[1]](d).validate();
  } catch (e) {
    bad++;
    console.log(`${key} ${d.metadata?.name}: ${e.message}`);
  }
}
process.exit(bad ? 1 : 0);
