// Package benchutil holds benchmark harnesses that several of nexio's
// packages run against their own backends or middleware, so that each
// benchmark file does not carry a copy: the cross-node broadcast and
// broker-hop benchmarks of the hub brokers, and the handshake and echo
// pairs of the wsmw middleware packages. It is internal: the harnesses
// are nexio's own measuring tools, not API.
package benchutil
