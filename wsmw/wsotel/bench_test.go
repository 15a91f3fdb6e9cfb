package wsotel_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/nexio-go/nexio/internal/benchutil"
	"github.com/nexio-go/nexio/wsmw"
	"github.com/nexio-go/nexio/wsmw/wsotel"
)

// BenchmarkHandshake and BenchmarkEcho put a traced route ("traced": the
// SDK's tracer, every span sampled and handed to an exporter that drops
// it) next to the bare route ("bare"), per connection and per message, as
// wsmetrics' do.

func traced(b *testing.B) wsmw.Middleware {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewNoopExporter()))
	b.Cleanup(func() { tp.Shutdown(context.Background()) })
	return wsotel.Trace(&wsotel.Options{TracerProvider: tp, Propagator: propagation.TraceContext{}})
}

func BenchmarkHandshake(b *testing.B) { benchutil.Handshake(b, "traced", traced) }

func BenchmarkEcho(b *testing.B) { benchutil.Echo(b, "traced", traced) }
