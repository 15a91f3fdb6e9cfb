// Package conformance is nexio's RFC 6455 conformance suite: a raw
// WebSocket client, written frame by frame over net.Conn, drives an echo
// endpoint built with wsroute through the case families of the Autobahn
// testsuite and judges each case by Autobahn's rules (OK, NON-STRICT,
// INFORMATIONAL, or a failure that names the case), once without
// compression and once with permessage-deflate (RFC 7692).
//
// The package holds no API: the client is unexported and the suite runs
// with go test (and so with make test). docs/conformance.md says what it
// covers and how to run one case.
package conformance
