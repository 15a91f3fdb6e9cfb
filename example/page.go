package main

import (
	"embed"
	"io/fs"
	"net/http"
)

// static holds the browser chat page: plain HTML, CSS and JavaScript,
// served as they are (no build step, nothing fetched from elsewhere).
//
//go:embed static
var static embed.FS

// pageHandlers returns the handlers of GET / (the chat page),
// GET /static/ (its stylesheet, script and icon) and GET /favicon.ico
// (the icon again, for browsers and tools that ask there whatever the
// page links).
func pageHandlers() (index, assets, icon http.Handler) {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(sub)
	index = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pageHeaders(w)
		http.ServeFileFS(w, r, sub, "index.html")
	})
	assets = http.StripPrefix("/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pageHeaders(w)
		files.ServeHTTP(w, r)
	}))
	icon = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pageHeaders(w)
		w.Header().Set("Content-Type", "image/svg+xml")
		http.ServeFileFS(w, r, sub, "favicon.svg")
	})
	return index, assets, icon
}

// pageHeaders keeps the page to its own origin: scripts, styles and
// WebSocket connections come from this server only.
func pageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	// The embedded files have no modification time: make browsers ask
	// again, so a restarted server's page is the one shown.
	h.Set("Cache-Control", "no-cache")
}
