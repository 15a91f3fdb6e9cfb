//go:build !unix

package wsroute

// rawReadable: on this system sockReader reads through net.Conn's Read.
const rawReadable = false

func (s *sockReader) rawFill(uintptr) bool { return true }
