// Starts GraphiQL against this server's /graphql and /graphql/ws. A separate file, not an
// inline script, so that the page's Content-Security-Policy can forbid inline scripts.
(function () {
  'use strict';

  var origin = window.location.origin;
  var httpUrl = origin + '/graphql';
  var wsUrl = origin.replace(/^http/, 'ws') + '/graphql/ws';

  // The headers editor starts with an Authorization header and no token in it: until one is
  // pasted, the header is left out, so that the page works anonymously (schema included).
  function withToken(headers) {
    var out = {};
    Object.keys(headers || {}).forEach(function (name) {
      var value = headers[name];
      var empty = name.toLowerCase() === 'authorization' && String(value).replace(/^\s*bearer\s*/i, '').trim() === '';
      if (!empty) out[name] = value;
    });
    return out;
  }

  // One fetcher per set of headers: subscriptions authenticate with the same headers as
  // queries, sent in the WebSocket's connection_init.
  var fetchers = {};
  function fetcherFor(headers) {
    var key = JSON.stringify(headers);
    if (!fetchers[key]) {
      fetchers[key] = GraphiQL.createFetcher({ url: httpUrl, subscriptionUrl: wsUrl, headers: headers, wsConnectionParams: headers });
    }
    return fetchers[key];
  }
  function fetcher(params, options) {
    var headers = withToken(options && options.headers);
    return fetcherFor(headers)(params, Object.assign({}, options, { headers: headers }));
  }

  var defaultQuery = [
    '# Herald: notification and communication settings of the CRM.',
    '#',
    '# Sign in with the Headers tab below: paste a token after "Bearer ".',
    '#   A user token: printed by `api bootstrap`, or `api token --user <id>`.',
    '#   An API key (hk_...): created with the createApiKey mutation.',
    '# The book icon on the left opens the documentation of every type and field.',
    '',
    'query Me {',
    '  viewer {',
    '    user { name email role }',
    '    account { name timeZone }',
    '  }',
    '}',
    '',
  ].join('\n');

  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: defaultQuery,
      defaultHeaders: '{\n  "Authorization": "Bearer "\n}',
      defaultEditorToolsVisibility: 'headers',
    })
  );
})();
