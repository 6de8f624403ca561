#!/usr/bin/env bash
# Refreshes the GraphiQL page's vendored assets from the npm registry (production builds only).
# npm checks each tarball against the registry's integrity hash; SHA256SUMS records what was
# committed. Change the versions here, run it, and commit the result with SHA256SUMS.
set -euo pipefail
cd "$(dirname "$0")"

GRAPHIQL=4.1.2 # the last major with a browser (UMD) build
REACT=18.3.1   # GraphiQL 4's peer; React 19 ships no UMD build

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "graphiql@$GRAPHIQL" "react@$REACT" "react-dom@$REACT" >/dev/null)
for tarball in "graphiql-$GRAPHIQL" "react-$REACT" "react-dom-$REACT"; do
  mkdir -p "$work/${tarball%-*}"
  tar xzf "$work/$tarball.tgz" -C "$work/${tarball%-*}"
done

cp "$work/graphiql/package/graphiql.min.js" "$work/graphiql/package/graphiql.min.css" .
cp "$work/react/package/umd/react.production.min.js" .
cp "$work/react-dom/package/umd/react-dom.production.min.js" .
# The source map comment would make browsers ask for a map that is not served.
sed -i '/^\/\/# sourceMappingURL=/d' graphiql.min.js
cp "$work/graphiql/package/LICENSE" LICENSE.graphiql
cp "$work/react/package/LICENSE" LICENSE.react
printf 'graphiql %s\nreact %s\nreact-dom %s\n' "$GRAPHIQL" "$REACT" "$REACT" >VERSIONS
sha256sum graphiql.min.js graphiql.min.css react.production.min.js react-dom.production.min.js >SHA256SUMS
