// Command tokend-load is tokend's load harness.
//
// It has three modes:
//
//	tokend-load run --target URL --scenario S --workers N --duration D ...
//	tokend-load suite [--quick] [--postgres URL] [--tokend bin/tokend] ...
//	tokend-load serve-baseline --listen ADDR [--size BYTES | --sign]
//
// run drives an already running tokend over loopback with a fixed number of
// closed-loop workers: after an unmeasured warm-up it measures for a fixed
// time and prints, per scenario, the successful requests per second, the
// latency percentiles, the errors by kind and the server's peak RSS.
//
// suite is what `make load` runs: it starts tokend itself as child
// processes (each on a fresh SQLite file or Postgres database, seeded with
// the tokend CLI), runs every scenario on both stores with both signing
// algorithms, the baselines (a bare net/http handler, a bare database round
// trip), the calibrations (one argon2id hash, one RSA-2048 signature) and a
// many-instance run on Postgres with a key rotation in the middle, and
// prints one Markdown table. Besides the user-facing scenarios it measures
// machine clients (client-credentials, also as a stall test at 256 workers,
// against EdDSA signing alone on the cores left over; introspect, against
// the bare database round trip), a client secret rotated mid-run on two
// instances (secret-rotation: every failed request counts), and
// login-then-refresh: 100 logins on the measured process, then 30 s of
// refresh load alone with the server's RSS sampled through it, which shows
// whether the password hashes' memory is returned once the burst is over.
//
// serve-baseline is the bare net/http handler the baseline-http scenario
// measures against: the floor any HTTP endpoint of the same size pays on
// this machine. With --sign it answers POST /oauth/token with a freshly
// signed EdDSA access token instead: the baseline-sign row, the floor of a
// client-credentials answer over HTTP (net/http and signing, nothing else).
//
// The harness shares the machine with the server and the database, so it
// keeps its own work small: one keep-alive transport, reused buffers,
// latencies kept in preallocated per-worker slices and sorted once at the
// end, and nothing logged per request. Each result also reports the CPU the
// harness itself used, so a run where the load generator is the bottleneck
// shows it.
package main
