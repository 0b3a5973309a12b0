#!/bin/sh
# update.sh fetches one pinned version of Redoc's standalone bundle from the
# npm registry and copies it, with its licences, into api/docs/ so that the
# /docs page is built into the binary and loads nothing from other hosts.
#
# Usage: api/docs/update.sh VERSION     (for example: api/docs/update.sh 2.5.4)
#
# It writes redoc.standalone.js (byte for byte as published), LICENSE.redoc
# (Redoc's licence followed by the third-party notices its package ships for
# the bundle) and VERSION. npm pack checks the tarball against the registry's
# integrity hash. Review the diff, then run `go test ./api/...`: the tests
# check the bundle's version banner against VERSION.
set -eu

version=${1:-}
case $version in
'' | *[!0-9A-Za-z.+-]*)
	echo "usage: $0 VERSION (an exact npm version of redoc, e.g. 2.5.4)" >&2
	exit 2
	;;
esac

dir=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

npm pack --silent --pack-destination "$tmp" "redoc@$version" >"$tmp/name"
tar -xzf "$tmp/$(cat "$tmp/name")" -C "$tmp"
pkg=$tmp/package

got=$(node -p 'require(process.argv[1]).version' "$pkg/package.json")
if [ "$got" != "$version" ]; then
	echo "$0: npm gave redoc $got, not $version" >&2
	exit 1
fi
if [ ! -f "$pkg/bundles/redoc.standalone.js" ]; then
	echo "$0: redoc $version has no bundles/redoc.standalone.js" >&2
	exit 1
fi

cp "$pkg/bundles/redoc.standalone.js" "$dir/redoc.standalone.js"

{
	echo "Redoc $version (npm package redoc, https://github.com/Redocly/redoc)"
	echo "is served by tokend at /docs/redoc.standalone.js under this licence:"
	echo
	cat "$pkg/LICENSE"
	# The bundle contains third-party code; its package ships their notices
	# beside it as *.LICENSE.txt (one for the bundle, one for the search
	# worker the bundle inlines).
	for f in "$pkg"/bundles/redoc.standalone.js.LICENSE.txt "$pkg"/bundles/*.worker.js.LICENSE.txt; do
		[ -f "$f" ] || continue
		echo
		echo "================================================================"
		echo "Third-party notices from bundles/$(basename "$f"):"
		echo
		cat "$f"
	done
} >"$dir/LICENSE.redoc"

printf '%s\n' "$version" >"$dir/VERSION"

echo "redoc $version: $(npm view "redoc@$version" dist.integrity)"
