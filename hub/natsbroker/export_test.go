package natsbroker

// Exported for the tests of package natsbroker_test.
var (
	AppendEnvelope = appendEnvelope
	DecodeEnvelope = func(p []byte) (e any, seq uint64, err error) {
		m, err := decodeEnvelope(p)
		return m.env, m.seq, err
	}
)
