package wsmw_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/nexio-go/nexio/wsmw"
)

// FuzzRedactQuery: whatever the query, Logger's redaction keeps its
// shape and never lets through the value of a parameter whose name
// looks secret.
func FuzzRedactQuery(f *testing.F) {
	for _, s := range []string{"", "token=abc", "room=a&token=abc", "to%6Ben=x", "%zz=1", "a&&b", "=x", "token", "a=b=c&Token=d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		out := wsmw.RedactQuery(q)
		in, got := strings.Split(q, "&"), strings.Split(out, "&")
		if len(in) != len(got) {
			t.Fatalf("%q became %q: %d parts, want %d", q, out, len(got), len(in))
		}
		for i, part := range in {
			name, _, hasValue := strings.Cut(part, "=")
			key, err := url.QueryUnescape(name)
			secret := err != nil || strings.Contains(strings.ToLower(key), "token") ||
				strings.Contains(strings.ToLower(key), "key") || strings.Contains(strings.ToLower(key), "auth")
			switch {
			case secret && hasValue:
				if got[i] != name+"=REDACTED" {
					t.Fatalf("%q: part %q became %q, want it redacted", q, part, got[i])
				}
			case !hasValue:
				if got[i] != part {
					t.Fatalf("%q: part %q without a value became %q", q, part, got[i])
				}
			}
		}
	})
}

// FuzzHeaderToken: the token read from an Authorization value is
// trimmed, and a "Bearer " prefix never stays on it.
func FuzzHeaderToken(f *testing.F) {
	for _, s := range []string{"", "x", "Bearer x", "bearer  x ", "Basic x", "Bearer", "Bearer ", " Bearer Bearer x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		tok := wsmw.HeaderToken(v)
		if tok != strings.TrimSpace(tok) {
			t.Fatalf("%q gave an untrimmed token %q", v, tok)
		}
		if scheme, rest, ok := strings.Cut(strings.TrimSpace(v), " "); ok && strings.EqualFold(scheme, "bearer") {
			if tok != strings.TrimSpace(rest) {
				t.Fatalf("%q gave %q, want %q", v, tok, strings.TrimSpace(rest))
			}
		}
		if !strings.Contains(v, tok) {
			t.Fatalf("%q gave %q, which it does not contain", v, tok)
		}
	})
}
