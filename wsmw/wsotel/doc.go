// Package wsotel traces nexio's WebSocket connections with
// OpenTelemetry: one span per connection, from the handshake request to
// the end, in the trace of the HTTP request that opened it.
//
//	mux.Handle("/ws/echo", wsroute.Handle(wsmw.Chain(wsotel.Trace(nil), wsmw.Logger(nil))(echo)))
//
// # Spans
//
// [Trace] starts a server span named "WebSocket " and the route pattern
// when a handshake request comes in, as a child of the trace context the
// request carries (W3C traceparent by default, through the global
// propagator), and hands the span's context to the handler: spans the
// handler starts from its ctx belong to the connection. The handshake is
// an event ("websocket.accepted"); the close code, reason, which side
// closed, the traffic and the duration are attributes set when the
// connection ends, and the span ends then. A refusal (an HTTP status, or
// a close code before accept) ends the span with its status or code; a
// 5xx refusal or a 1011 close marks the span as an error.
//
// # Metrics
//
// Metrics are Prometheus' (package wsmetrics), not OpenTelemetry's: the
// counters are read from the connections when scraped, at no cost per
// message, which an OpenTelemetry instrument would not give for free.
// A deployment that collects metrics through OpenTelemetry can read the
// Prometheus registry with OpenTelemetry's Prometheus bridge.
package wsotel
