package natsbroker_test

import (
	"sync"
	"testing"
	"time"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/hub/brokertest"
	"github.com/nexio-go/nexio/hub/natsbroker"
)

// The broker contract, against the shared NATS for most of it and a
// private nats-server for the restart and data-loss checks. Each broker
// reaches NATS through a proxy of its own, so that a node can be cut off
// as a crash or a partition would.
func TestBrokerContract(t *testing.T) {
	t.Parallel()
	url := natsURL(t)
	var proxies sync.Map // hub.Broker -> *brokertest.Proxy
	newBroker := func(t *testing.T, url string) hub.Broker {
		p := brokertest.NewProxy(t, hostPort(url))
		logger, _ := testLogger(t)
		b := natsbroker.New(connect(t, "nats://"+p.Addr()), &natsbroker.Options{
			Prefix:  testPrefix(t, url),
			Timeout: 2 * time.Second, // generous: a slow CI answer is no outage
			Logger:  logger,
		})
		proxies.Store(hub.Broker(b), p)
		return b
	}
	srv := startNATS(t)
	brokertest.Run(t,
		func(t *testing.T) hub.Broker { return newBroker(t, url) },
		brokertest.WithIsolate(func(t *testing.T, b hub.Broker) func() {
			p, _ := proxies.Load(b)
			p.(*brokertest.Proxy).Cut()
			return p.(*brokertest.Proxy).Restore
		}),
		brokertest.WithBackend(brokertest.Backend{
			New:   func(t *testing.T) hub.Broker { return newBroker(t, srv.url()) },
			Stop:  func(*testing.T) { srv.kill() },
			Start: func(*testing.T) { srv.start() },
			Wipe:  func(*testing.T) { srv.wipe() },
		}),
	)
}

func hostPort(url string) string {
	for _, p := range []string{"nats://", "tls://"} {
		if len(url) > len(p) && url[:len(p)] == p {
			return url[len(p):]
		}
	}
	return url
}
