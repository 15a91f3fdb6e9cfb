package redisbroker_test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/hub/brokertest"
	"github.com/nexio-go/nexio/hub/redisbroker"
)

// The broker contract shared with every hub.Broker, against the test
// Redis for most of it and a private redis-server for the restart checks.
// Each broker reaches Redis through a proxy of its own, so that a node
// can be cut off as a crash or a partition would. The private server
// runs without persistence, so a restart is also a loss of data.
func TestBrokerContract(t *testing.T) {
	t.Parallel()
	opt := redisOptions(t)
	var (
		proxies  sync.Map // hub.Broker -> *brokertest.Proxy
		prefixes sync.Map // test name -> prefix
	)
	prefixOf := func(t *testing.T, c redis.UniversalClient) string {
		if p, ok := prefixes.Load(t.Name()); ok {
			return p.(string)
		}
		sum := sha256.Sum256([]byte(t.Name()))
		var r [4]byte
		rand.Read(r[:])
		p, _ := prefixes.LoadOrStore(t.Name(), "contract-"+hex.EncodeToString(sum[:5])+hex.EncodeToString(r[:]))
		return p.(string)
	}
	newBroker := func(t *testing.T, addr string) hub.Broker {
		p := brokertest.NewProxy(t, addr)
		o := *opt
		o.Addr = p.Addr()
		o.DialerRetries = 1
		c := redis.NewClient(&o)
		t.Cleanup(func() { c.Close() })
		logger, _ := testLogger(t)
		b := redisbroker.New(c, &redisbroker.Options{
			Prefix:      prefixOf(t, c),
			Timeout:     2 * time.Second, // generous: a slow CI answer is no outage
			PresenceTTL: 3 * time.Second, // the contract: dead nodes' members gone within 10s
			Logger:      logger,
		})
		proxies.Store(hub.Broker(b), p)
		return b
	}
	srv := startRedis(t)
	brokertest.Run(t,
		func(t *testing.T) hub.Broker { return newBroker(t, opt.Addr) },
		brokertest.WithIsolate(func(t *testing.T, b hub.Broker) func() {
			p, _ := proxies.Load(b)
			p.(*brokertest.Proxy).Cut()
			return p.(*brokertest.Proxy).Restore
		}),
		brokertest.WithBackend(brokertest.Backend{
			New:   func(t *testing.T) hub.Broker { return newBroker(t, srv.addr()) },
			Stop:  func(*testing.T) { srv.kill() },
			Start: func(*testing.T) { srv.start() },
			Wipe:  func(*testing.T) {}, // the private server keeps nothing across a restart
		}),
	)
}
