// A local stand-in for GitHub's OAuth endpoints and REST API: the authorize step (done in-process, as the user
// approving), POST /login/oauth/access_token (client credentials, code, PKCE verifier, redirect URI checked, errors
// answered with 200 as GitHub does), GET /user and GET /user/emails. It can be told to fail or to hang.
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface GitHubEmail {
  email: string;
  primary: boolean;
  verified: boolean;
}

export interface GitHubAccount {
  id: number;
  login: string;
  name?: string | null;
  emails: GitHubEmail[];
}

/** `hang`: accept the connection and never answer; `error`: answer 500. */
export type GitHubFault = 'none' | 'hang' | 'error';

/** Token requests held at the provider until released, so a test can act while a sign-in is half way. */
export interface TokenHold {
  /** Resolves once `count` token requests are being held. */
  arrived(count: number): Promise<void>;
  /** Lets every held request, and every later one, through. */
  release(): void;
}

export interface FakeGitHub {
  readonly url: string;
  readonly clientId: string;
  readonly clientSecret: string;
  /** Environment that points the app at this server. */
  readonly env: Record<string, string>;
  /** Faults injected into the token endpoint and the API. */
  fault: GitHubFault;
  /** The user approving the authorization request: checks it and returns the redirect with code and state. */
  authorize(authorizationUrl: string, account: GitHubAccount): URL;
  /** The user declining: GitHub redirects back with error=access_denied. */
  deny(authorizationUrl: string): URL;
  /** Holds token requests from now until the hold is released. */
  holdTokens(): TokenHold;
  stop(): Promise<void>;
}

interface Grant {
  account: GitHubAccount;
  redirectUri: string;
  codeChallenge: string;
}

const readBody = async (req: IncomingMessage) => {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
};

export async function startFakeGitHub(): Promise<FakeGitHub> {
  const clientId = 'gh-client-id';
  const clientSecret = `gh-secret-${randomBytes(8).toString('hex')}`;
  const codes = new Map<string, Grant>();
  const tokens = new Map<string, GitHubAccount>();
  const state = { fault: 'none' as GitHubFault };
  let hold: { held: number; wake: () => void; released: Promise<void> } | undefined;

  const server = createServer(async (req, res) => {
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (state.fault === 'hang') return;
    if (state.fault === 'error') return json(500, { message: 'Server Error' });
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method === 'POST' && url.pathname === '/login/oauth/access_token') {
      if (hold) {
        hold.held++;
        hold.wake();
        await hold.released;
      }
      const form = new URLSearchParams(await readBody(req));
      if (form.get('client_id') !== clientId || form.get('client_secret') !== clientSecret) {
        return json(200, {
          error: 'incorrect_client_credentials',
          error_description: 'The client_id and/or client_secret passed are incorrect.',
        });
      }
      const code = form.get('code') ?? '';
      const grant = codes.get(code);
      codes.delete(code);
      const verifier = form.get('code_verifier') ?? '';
      const challenge = createHash('sha256').update(verifier).digest('base64url');
      if (!grant || grant.redirectUri !== form.get('redirect_uri') || grant.codeChallenge !== challenge) {
        return json(200, {
          error: 'bad_verification_code',
          error_description: 'The code passed is incorrect or expired.',
        });
      }
      const token = `gho_${randomBytes(16).toString('hex')}`;
      tokens.set(token, grant.account);
      return json(200, { access_token: token, token_type: 'bearer', scope: 'read:user,user:email' });
    }
    const account = tokens.get((req.headers.authorization ?? '').replace(/^(Bearer|token) /i, ''));
    if (req.method === 'GET' && (url.pathname === '/user' || url.pathname === '/user/emails')) {
      if (!account) return json(401, { message: 'Bad credentials' });
      if (url.pathname === '/user/emails')
        return json(
          200,
          account.emails.map((e) => ({ ...e, visibility: null })),
        );
      return json(200, { id: account.id, login: account.login, name: account.name ?? null });
    }
    json(404, { message: 'Not Found' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const checkRequest = (authorizationUrl: string) => {
    const request = new URL(authorizationUrl);
    const params = request.searchParams;
    if (`${request.origin}${request.pathname}` !== `${url}/login/oauth/authorize`)
      throw new Error('not our authorize URL');
    if (params.get('client_id') !== clientId) throw new Error('wrong client_id');
    if (params.get('code_challenge_method') !== 'S256' || !params.get('code_challenge')) throw new Error('no PKCE');
    if (!params.get('state') || !params.get('redirect_uri')) throw new Error('no state or redirect_uri');
    return params;
  };

  return {
    url,
    clientId,
    clientSecret,
    env: {
      OAUTH_GITHUB_CLIENT_ID: clientId,
      OAUTH_GITHUB_CLIENT_SECRET: clientSecret,
      OAUTH_GITHUB_AUTHORIZE_URL: `${url}/login/oauth/authorize`,
      OAUTH_GITHUB_TOKEN_URL: `${url}/login/oauth/access_token`,
      OAUTH_GITHUB_API_URL: url,
    },
    get fault() {
      return state.fault;
    },
    set fault(value) {
      state.fault = value;
    },
    authorize(authorizationUrl, account) {
      const params = checkRequest(authorizationUrl);
      const code = randomBytes(10).toString('hex');
      const redirectUri = params.get('redirect_uri') as string;
      codes.set(code, { account, redirectUri, codeChallenge: params.get('code_challenge') as string });
      const back = new URL(redirectUri);
      back.searchParams.set('code', code);
      back.searchParams.set('state', params.get('state') as string);
      return back;
    },
    holdTokens() {
      let release = () => {};
      const released = new Promise<void>((resolve) => {
        release = resolve;
      });
      let wake = () => {};
      const current = { held: 0, wake: () => wake(), released };
      hold = current;
      return {
        async arrived(count) {
          while (current.held < count) await new Promise<void>((resolve) => (wake = resolve));
        },
        release() {
          if (hold === current) hold = undefined;
          release();
        },
      };
    },
    deny(authorizationUrl) {
      const params = checkRequest(authorizationUrl);
      const back = new URL(params.get('redirect_uri') as string);
      back.searchParams.set('error', 'access_denied');
      back.searchParams.set('state', params.get('state') as string);
      return back;
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
