/**
 * `npm run cluster`: one local cluster from the test rig, in the foreground.
 * Prints the admin kubeconfig path; Ctrl-C stops every process and removes
 * the temp dir.
 */
import { startRig } from '../test/rig/cluster.ts';

const started = Date.now();
process.stderr.write('starting etcd, kube-apiserver and kube-controller-manager...\n');
const rig = await startRig({ clusters: 1 });
const cluster = rig.clusters[0]!;
process.stderr.write(
  `ready in ${((Date.now() - started) / 1000).toFixed(1)} s; API server ${cluster.server}\n`,
);
process.stderr.write(`try: KUBECONFIG=${cluster.adminKubeconfigPath} npm start\nCtrl-C stops it.\n`);
process.stdout.write(`${cluster.adminKubeconfigPath}\n`);
// Stay in the foreground until interrupted; the rig's interrupt hook stops everything.
setInterval(() => {}, 1 << 30);
