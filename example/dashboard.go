package main

import (
	"io/fs"
	"net/http"
)

// dashboardHandler serves GET /dashboard: a page that polls /metrics
// every second and draws live charts of connections, messages per second
// in and out, close codes and slow consumers. It is plain HTML and
// JavaScript from the embedded static directory (its script is
// /static/dashboard.js): no build step, nothing fetched from elsewhere.
func dashboardHandler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pageHeaders(w)
		http.ServeFileFS(w, r, sub, "dashboard.html")
	})
}
