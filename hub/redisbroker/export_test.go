package redisbroker

import "github.com/nexio-go/nexio/hub"

// EncodeForTest returns e's wire form (version 2) numbered n in stream,
// for tests that publish on the broker's channels themselves.
func EncodeForTest(e hub.Envelope, stream, n uint64) []byte {
	return appendEnvelope(nil, e, seqNo{stream: stream, n: n})
}

// EncodeV1ForTest returns e's wire form in version 1, as nodes of an
// earlier nexio publish it.
func EncodeV1ForTest(e hub.Envelope) []byte {
	return appendBody(append([]byte(nil), wireVersionV1, wireType(e.Type)), e)
}

// EncodeEntryForTest returns e as a room's history stream keeps it.
func EncodeEntryForTest(e hub.Envelope) []byte {
	return append(historyHead(e), historyBody(e)...)
}
