package wsroute

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzTruncateReason checks that any reason becomes one a close frame
// can carry: at most MaxCloseReason bytes of valid UTF-8, a prefix of the
// (repaired) input.
func FuzzTruncateReason(f *testing.F) {
	for _, s := range []string{"", "ok", strings.Repeat("é", 100), strings.Repeat("a", 123), strings.Repeat("a", 124), "\xff\xfe", strings.Repeat("日本", 40)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := truncateReason(s)
		if len(got) > MaxCloseReason {
			t.Fatalf("len %d > %d", len(got), MaxCloseReason)
		}
		if !utf8.ValidString(got) {
			t.Fatalf("invalid UTF-8 %q", got)
		}
		if !strings.HasPrefix(strings.ToValidUTF8(s, "\uFFFD"), got) && !strings.HasPrefix(toValidUTF8(s), got) {
			t.Fatalf("%q is not a prefix of %q", got, s)
		}
		if utf8.ValidString(s) && len(s) <= MaxCloseReason && got != s {
			t.Fatalf("short valid reason changed: %q -> %q", s, got)
		}
		if len(toValidUTF8(s)) > MaxCloseReason && len(got) < MaxCloseReason-3 {
			t.Fatalf("cut too short: %d bytes", len(got))
		}
	})
}

func TestStatusCodeSendable(t *testing.T) {
	t.Parallel()
	for code := StatusCode(-1); code < 6000; code++ {
		want := (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999)
		if code.Sendable() != want {
			t.Fatalf("%d.Sendable() = %v", code, !want)
		}
	}
}
