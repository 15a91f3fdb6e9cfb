package testutil_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nexio-go/nexio/internal/testutil"
)

// recorder is a testing.TB that records a Fatalf instead of ending the
// test, so the helpers' failures can be asserted.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(string, ...any) {
	r.failed = true
}

func TestHelpersFailAndPass(t *testing.T) {
	t.Parallel()
	testCases := []struct {
		name string
		run  func(tb testing.TB)
		fail bool
	}{
		{"check true", func(tb testing.TB) { testutil.Check(tb, true, "x") }, false},
		{"check false", func(tb testing.TB) { testutil.Check(tb, false, "x") }, true},
		{"equal", func(tb testing.TB) { testutil.Equal(tb, 1, 1) }, false},
		{"not equal", func(tb testing.TB) { testutil.Equal(tb, 1, 2) }, true},
		{"no error", func(tb testing.TB) { testutil.NoErr(tb, nil) }, false},
		{"error", func(tb testing.TB) { testutil.NoErr(tb, errors.New("boom")) }, true},
		{"eventually true", func(tb testing.TB) {
			n := 0
			testutil.Eventually(tb, func() bool { n++; return n > 3 }, "x")
		}, false},
		{"eventually false", func(tb testing.TB) {
			testutil.EventuallyWithin(tb, 20*time.Millisecond, func() bool { return false }, "x")
		}, true},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := &recorder{TB: t}
			tc.run(r)
			if r.failed != tc.fail {
				t.Fatalf("failed = %v, want %v", r.failed, tc.fail)
			}
		})
	}
}
