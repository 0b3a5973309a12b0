// Package interop checks tokend against independent implementations: the
// npm package jose verifies tokend's access tokens from its JWKS (and, with
// the flow script, logs in and refreshes over HTTP). The tests run when node
// is installed; TOKEND_TEST_REQUIRE_NODE=1 (set by .ci/run) makes a missing
// node a failure instead of a skip.
package interop
