// GraphiQL from this server alone (no CDN): the page links its script, styles and editor workers from
// /graphiql/*, which this plugin serves from @graphql-yoga/render-graphiql's bundle, loaded on first use.
// Everything is a same-origin file, so the page works offline and under a `script-src 'self'` policy.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { GraphiQLOptions, Plugin } from 'graphql-yoga';

const PREFIX = '/graphiql/';

interface Bundle {
  js: string;
  css: string;
  favicon: string;
  editorWorkerService: string;
  jsonWorker: string;
  graphqlWorker: string;
}

// Runs before the bundle: Monaco asks this for its workers' URLs (files here, not blob: URLs).
const SETUP = `self.MonacoEnvironment = {
  globalAPI: false,
  getWorkerUrl: function (_moduleId, label) {
    var name = label === 'json' ? 'json' : label === 'graphql' ? 'graphql' : 'editor';
    return new URL('graphiql/' + name + '.worker.js', document.baseURI).href;
  },
};
`;

// Runs after the bundle: renders GraphiQL with the options the page carries as JSON.
const RENDER = `YogaGraphiQL.renderYogaGraphiQL(
  document.querySelector('#root'),
  JSON.parse(document.getElementById('graphiql-options').textContent),
);
`;

let bundle: Promise<Bundle> | undefined;

/** The package exports only its HTML renderer; its asset module sits next to it. */
function loadBundle(): Promise<Bundle> {
  bundle ??= (async () => {
    const entry = createRequire(import.meta.url).resolve('@graphql-yoga/render-graphiql');
    const file = join(dirname(entry), '..', 'esm', 'graphiql.js');
    return (await import(pathToFileURL(file).href)) as Bundle;
  })();
  return bundle;
}

const escapeHtml = (value: string) => value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** Yoga's `renderGraphiQL`: the page, with relative links so it also works under a path prefix. */
export function renderGraphiQL(options: GraphiQLOptions = {}): string {
  // `<` is escaped so no value can close the script element that carries the options.
  const json = JSON.stringify(options).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>${escapeHtml(options.title ?? 'GraphiQL')}</title>
    <link rel="icon" href="graphiql/favicon.ico" />
    <link rel="stylesheet" href="graphiql/graphiql.css" />
  </head>
  <body id="body" class="no-focus-outline">
    <noscript>You need to enable JavaScript to run GraphiQL.</noscript>
    <div id="root"></div>
    <script id="graphiql-options" type="application/json">${json}</script>
    <script src="graphiql/setup.js"></script>
    <script src="graphiql/graphiql.js"></script>
    <script src="graphiql/render.js"></script>
  </body>
</html>
`;
}

const JS = 'text/javascript; charset=utf-8';

const ASSETS: Record<string, { type: string; body: (b: Bundle) => string | Uint8Array<ArrayBuffer> }> = {
  'setup.js': { type: JS, body: () => SETUP },
  'render.js': { type: JS, body: () => RENDER },
  'graphiql.js': { type: JS, body: (b) => b.js },
  'graphiql.css': { type: 'text/css; charset=utf-8', body: (b) => b.css },
  'editor.worker.js': { type: JS, body: (b) => b.editorWorkerService },
  'json.worker.js': { type: JS, body: (b) => b.jsonWorker },
  'graphql.worker.js': { type: JS, body: (b) => b.graphqlWorker },
  'favicon.ico': {
    type: 'image/x-icon',
    body: (b) => new Uint8Array(Buffer.from(b.favicon.slice(b.favicon.indexOf(',') + 1), 'base64')),
  },
};

/** Serves GET /graphiql/<asset>; install it only when GraphiQL is enabled. */
export function useGraphiQLAssets(): Plugin {
  return {
    onRequest({ url, request, endResponse, fetchAPI }) {
      if (!url.pathname.startsWith(PREFIX)) return;
      const asset = ASSETS[url.pathname.slice(PREFIX.length)];
      if (!asset || (request.method !== 'GET' && request.method !== 'HEAD')) {
        endResponse(new fetchAPI.Response('not found\n', { status: 404 }));
        return;
      }
      return loadBundle().then((loaded) => {
        const body = asset.body(loaded);
        endResponse(
          new fetchAPI.Response(request.method === 'HEAD' ? null : body, {
            status: 200,
            headers: {
              'content-type': asset.type,
              'cache-control': 'public, max-age=3600',
              'x-content-type-options': 'nosniff',
            },
          }),
        );
      });
    },
  };
}
