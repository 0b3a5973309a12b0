// Package interop checks tokend against independent implementations: the
// npm package jose verifies tokend's access tokens from its JWKS (and, with
// the flow script, logs in and refreshes over HTTP). The tests run when node
// is installed; TOKEND_TEST_REQUIRE_NODE=1 (set by .ci/run) makes a missing
// node a failure instead of a skip.
//
// oauth2-proxy, built from its Go module at a pinned release and cached in
// the user cache directory, runs as a relying party in front of an upstream
// (oauth2proxy_test.go); it skips when it cannot be built, unless
// TOKEND_TEST_REQUIRE_OAUTH2_PROXY=1 (also set by .ci/run).
package interop
