package redisbroker

import (
	"strings"
	"testing"
	"time"
)

func TestOptionsDefaults(t *testing.T) {
	t.Parallel()
	o := (*Options)(nil).withDefaults()
	if o.Prefix != "nexio" || o.Timeout != time.Second || o.PresenceTTL != 6*time.Second ||
		o.Heartbeat != 2*time.Second || o.PubSub != AutoPubSub || o.Logger == nil {
		t.Fatalf("defaults: %+v", o)
	}
	// The members of a crashed node leave within 10s: their entries
	// expire PresenceTTL after its last heartbeat, and every other node
	// notices at its next heartbeat.
	if o.PresenceTTL+o.Heartbeat > 10*time.Second {
		t.Fatalf("defaults give leaves %v after a crash, want at most 10s", o.PresenceTTL+o.Heartbeat)
	}
	in := &Options{PresenceTTL: 3 * time.Second}
	o = in.withDefaults()
	if o.Heartbeat != time.Second {
		t.Fatalf("Heartbeat follows PresenceTTL: got %v", o.Heartbeat)
	}
	if in.Prefix != "" {
		t.Fatal("withDefaults changed the caller's Options")
	}
}

func TestOptionsInvalid(t *testing.T) {
	t.Parallel()
	testCases := []struct {
		name string
		o    Options
		want string
	}{
		{"braces in prefix", Options{Prefix: "a{b}"}, "Prefix"},
		{"negative timeout", Options{Timeout: -1}, "negative"},
		{"heartbeat not below TTL", Options{PresenceTTL: time.Second, Heartbeat: time.Second}, "Heartbeat"},
		{"unknown mode", Options{PubSub: 7}, "unknown mode 7"},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				r := recover()
				s, _ := r.(string)
				if !strings.HasPrefix(s, "redisbroker: ") || !strings.Contains(s, tc.want) {
					t.Fatalf("panic %v, want a redisbroker: panic about %q", r, tc.want)
				}
			}()
			tc.o.withDefaults()
		})
	}
}
