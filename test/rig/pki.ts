/**
 * Certificates for a test cluster: a CA, a serving certificate for
 * 127.0.0.1/localhost signed by it, and the service-account signing key.
 * Made with the openssl command, which every Debian machine has.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type ClusterPki = {
  readonly caCertPath: string;
  readonly caCertPem: string;
  readonly servingCertPath: string;
  readonly servingKeyPath: string;
  readonly saKeyPath: string;
  readonly saPubPath: string;
};

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

export function makePki(dir: string): ClusterPki {
  const p = (name: string) => join(dir, name);
  openssl([
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=ipsp-test-ca',
    '-keyout',
    p('ca.key'),
    '-out',
    p('ca.crt'),
  ]);
  writeFileSync(p('serving.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  openssl([
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-subj',
    '/CN=kube-apiserver',
    '-keyout',
    p('serving.key'),
    '-out',
    p('serving.csr'),
  ]);
  openssl([
    'x509',
    '-req',
    '-in',
    p('serving.csr'),
    '-CA',
    p('ca.crt'),
    '-CAkey',
    p('ca.key'),
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    p('serving.ext'),
    '-out',
    p('serving.crt'),
  ]);
  openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', p('sa.key')]);
  openssl(['pkey', '-in', p('sa.key'), '-pubout', '-out', p('sa.pub')]);
  return {
    caCertPath: p('ca.crt'),
    caCertPem: readFileSync(p('ca.crt'), 'utf8'),
    servingCertPath: p('serving.crt'),
    servingKeyPath: p('serving.key'),
    saKeyPath: p('sa.key'),
    saPubPath: p('sa.pub'),
  };
}
