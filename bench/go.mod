module github.com/nexio-go/nexio/bench

go 1.26.0

replace github.com/nexio-go/nexio => ../

require (
	github.com/coder/websocket v1.8.15
	github.com/gorilla/websocket v1.5.3
	github.com/lxzan/gws v1.8.9
	github.com/nexio-go/nexio v0.0.0-00010101000000-000000000000
	github.com/olahol/melody v1.1.4
)

require (
	github.com/dolthub/maphash v0.1.0 // indirect
	github.com/klauspost/compress v1.17.9 // indirect
	golang.org/x/time v0.16.0 // indirect
)
