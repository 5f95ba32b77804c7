/**
 * A webhook token authenticator (authentication.k8s.io/v1 TokenReview) that
 * the rig plugs into every API server. Tokens minted with `mint()` are known
 * at once (the API server's cache TTL is 0), so a test can create a user with
 * any groups in a running cluster; any other token goes to `delegate`, a URL
 * of another authenticator (the EKS one in the Lambda tests), when set.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

export type WebhookUser = { username: string; groups: readonly string[] };

export type IdentityWebhook = {
  readonly url: string;
  mint(user: WebhookUser): string;
  setDelegate(url: string | undefined): void;
  close(): Promise<void>;
};

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function startIdentityWebhook(): Promise<IdentityWebhook> {
  const users = new Map<string, WebhookUser>();
  let delegate: string | undefined;
  const server = createServer(async (req, res) => {
    const body = await readBody(req);
    let answer: unknown;
    try {
      const review = JSON.parse(body) as { spec?: { token?: string } };
      const user = users.get(review.spec?.token ?? '');
      if (user) {
        answer = { authenticated: true, user: { username: user.username, groups: [...user.groups] } };
      } else if (delegate) {
        const forwarded = await fetch(delegate, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
        });
        res.writeHead(forwarded.status, { 'content-type': 'application/json' });
        res.end(await forwarded.text());
        return;
      } else {
        answer = { authenticated: false };
      }
    } catch (error) {
      answer = { authenticated: false, error: String(error) };
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', status: answer }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/authenticate`,
    mint(user) {
      const token = `rig-${randomBytes(24).toString('hex')}`;
      users.set(token, user);
      return token;
    },
    setDelegate(url) {
      delegate = url;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
