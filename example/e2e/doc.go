// Package e2e is the browser end-to-end test of nexio's demo server: a
// real headless Chromium opens the chat page twice, the two pages chat,
// see each other's presence, and show 1001 when the server stops. The
// Live tests (live_test.go) cut a page's network or kill its instance
// behind a small TCP load balancer the test controls, and check that the
// page shows every message it missed, once, in order; they also check
// the page on a 390 px phone.
//
// It is a separate module so that its dependency (chromedp) stays out of
// nexio's. Run it with make e2e; it needs Debian's chromium
// (apt-get install chromium) and, for the two-instance test, Redis on
// 127.0.0.1:6379.
package e2e
