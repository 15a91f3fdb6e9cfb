package wsotel

import (
	"context"
	"strconv"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/nexio-go/nexio/wsmw"
	"github.com/nexio-go/nexio/wsroute"
)

// ScopeName is the instrumentation scope of the spans Trace starts.
const ScopeName = "github.com/nexio-go/nexio/wsmw/wsotel"

// Options configures Trace. The zero value and nil mean the defaults.
type Options struct {
	// TracerProvider creates the tracer. Defaults to
	// otel.GetTracerProvider() at the time Trace is called.
	TracerProvider trace.TracerProvider

	// Propagator reads the trace context from the handshake request's
	// headers. Defaults to otel.GetTextMapPropagator() at the time Trace
	// is called.
	Propagator propagation.TextMapPropagator

	// SpanName names a connection's span. Defaults to "WebSocket " and
	// the pattern the request matched (http.Request.Pattern), or
	// "WebSocket" when it matched none: never the raw path, which would
	// make every connection's span name different.
	SpanName func(c *wsroute.Conn) string
}

// Attribute keys set on a connection's span, beyond OpenTelemetry's
// semantic conventions for HTTP (http.route, url.path,
// http.response.status_code, client.address).
const (
	ConnIDKey      = attribute.Key("websocket.conn.id")
	SubprotocolKey = attribute.Key("websocket.subprotocol")
	CloseCodeKey   = attribute.Key("websocket.close.code")
	CloseReasonKey = attribute.Key("websocket.close.reason")
	ClosedByKey    = attribute.Key("websocket.closed_by") // "client" or "server"
	DurationKey    = attribute.Key("websocket.duration_seconds")
	MessagesInKey  = attribute.Key("websocket.messages_in")
	MessagesOutKey = attribute.Key("websocket.messages_out")
	BytesInKey     = attribute.Key("websocket.bytes_in")
	BytesOutKey    = attribute.Key("websocket.bytes_out")
)

// Trace returns a middleware that traces each connection with a span, as
// the package documentation describes. Put it first in the chain, so
// that the span covers the other middleware and sees their refusals.
func Trace(opts *Options) wsmw.Middleware {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.TracerProvider == nil {
		o.TracerProvider = otel.GetTracerProvider()
	}
	if o.Propagator == nil {
		o.Propagator = otel.GetTextMapPropagator()
	}
	if o.SpanName == nil {
		o.SpanName = spanName
	}
	tracer := o.TracerProvider.Tracer(ScopeName)
	return func(next wsroute.HandlerFunc) wsroute.HandlerFunc {
		return func(ctx context.Context, c *wsroute.Conn) error {
			start := time.Now()
			r := c.Request()
			ctx = o.Propagator.Extract(ctx, propagation.HeaderCarrier(r.Header))
			attrs := []attribute.KeyValue{
				attribute.String("url.path", r.URL.Path),
				attribute.String("client.address", c.ClientIP()),
				ConnIDKey.String(c.ID()),
			}
			if r.Pattern != "" {
				attrs = append(attrs, attribute.String("http.route", r.Pattern))
			}
			ctx, span := tracer.Start(ctx, o.SpanName(c),
				trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start), trace.WithAttributes(attrs...))
			c.OnAccept(func() {
				span.AddEvent("websocket.accepted", trace.WithAttributes(SubprotocolKey.String(c.Subprotocol())))
			})
			c.OnEnd(func(e wsroute.ConnEnd) { end(span, c, e, time.Since(start)) })
			return next(ctx, c)
		}
	}
}

func spanName(c *wsroute.Conn) string {
	if p := c.Request().Pattern; p != "" {
		return "WebSocket " + p
	}
	return "WebSocket"
}

// end records how the connection ended and ends its span.
func end(span trace.Span, c *wsroute.Conn, e wsroute.ConnEnd, d time.Duration) {
	attrs := []attribute.KeyValue{
		attribute.Int("http.response.status_code", e.Status),
		DurationKey.Float64(d.Seconds()),
	}
	if e.Code != 0 {
		attrs = append(attrs, CloseCodeKey.Int(int(e.Code)), CloseReasonKey.String(e.Reason))
	}
	if e.Accepted {
		by := "server"
		if e.PeerClosed {
			by = "client"
		}
		s := c.Stats()
		attrs = append(attrs, ClosedByKey.String(by),
			MessagesInKey.Int64(s.MessagesIn), MessagesOutKey.Int64(s.MessagesOut),
			BytesInKey.Int64(s.BytesIn), BytesOutKey.Int64(s.BytesOut))
	}
	span.SetAttributes(attrs...)
	switch {
	case e.Code == wsroute.StatusInternalError:
		span.SetStatus(codes.Error, "closed with 1011: "+e.Reason)
	case e.Status >= 500:
		span.SetStatus(codes.Error, "refused with HTTP "+strconv.Itoa(e.Status))
	}
	if e.Err != nil && (e.Code == wsroute.StatusInternalError || e.Status >= 500) {
		span.RecordError(e.Err)
	}
	span.End()
}
