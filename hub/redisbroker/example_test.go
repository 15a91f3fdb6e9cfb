package redisbroker_test

import (
	"context"
	"errors"
	"log"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nexio-go/nexio/hub"
	"github.com/nexio-go/nexio/hub/redisbroker"
	"github.com/nexio-go/nexio/wsroute"
)

// Rooms that span every instance sharing a Redis: run this program twice
// on two ports, and members of /ws/rooms/lobby on either hear each other.
// (No Output line: it needs a Redis and serves until interrupted.)
func Example() {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()
	h := hub.New(&hub.Options{
		Broker: redisbroker.New(client, &redisbroker.Options{Prefix: "chat"}),
	})

	mux := http.NewServeMux()
	mux.Handle("/ws/rooms/{room}", wsroute.Handle(func(ctx context.Context, c *wsroute.Conn) error {
		if err := c.Accept(ctx); err != nil {
			return err
		}
		room := c.Param("room")
		if err := h.Join(c, room); err != nil {
			return err
		}
		for msg, err := range c.Messages(ctx) {
			if err != nil {
				return err
			}
			err := h.Broadcast(ctx, room, msg.Type, msg.Data, hub.Except(c))
			if errors.Is(err, hub.ErrPublish) {
				// Redis is down: this instance's members got the message,
				// the other instances' did not. Tell the sender.
				c.SendText(ctx, "your message may not have reached everyone")
			}
		}
		return nil
	}))
	srv := &http.Server{Addr: "127.0.0.1:8080", Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.ListenAndServe()

	stop, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	<-stop.Done()
	ctx, cancelShutdown := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelShutdown()
	h.Shutdown(ctx) // closes members with 1001, then the broker
	srv.Shutdown(ctx)
}

// On Redis Cluster, pass a cluster client: sharded pub/sub is used when
// the servers support it (Redis 7.0+). (No Output line: it needs a
// cluster.)
func ExampleNew_cluster() {
	client := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs: []string{"10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"},
	})
	defer client.Close()
	broker := redisbroker.New(client, &redisbroker.Options{
		Prefix:      "chat",
		PresenceTTL: 15 * time.Second, // members of a crashed node vanish within 15s
	})
	h := hub.New(&hub.Options{Broker: broker})
	defer h.Shutdown(context.Background())
	log.Printf("pub/sub: %v", broker.PubSubMode())
}

// Stats tell whether cross-node delivery works, for a health endpoint.
// (No Output line: it serves until stopped.)
func ExampleBroker_Stats() {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()
	broker := redisbroker.New(client, nil)
	h := hub.New(&hub.Options{Broker: broker})
	defer h.Shutdown(context.Background())

	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		s := broker.Stats()
		if !s.Subscribed {
			http.Error(w, "not receiving from other nodes", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	})
}

// Rooms that keep their last 1,000 messages in Redis for ten minutes: a
// member that comes back with the position of the last message it saw
// gets what it missed, from any instance, or is told it cannot.
// (No Output line: it needs a Redis.)
func ExampleBroker_Append() {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()
	h := hub.New(&hub.Options{
		Broker:  redisbroker.New(client, &redisbroker.Options{Prefix: "chat"}),
		History: hub.History{Size: 1000, TTL: 10 * time.Minute},
	})
	defer h.Shutdown(context.Background())

	ctx := context.Background()
	pos, err := h.Publish(ctx, "lobby", wsroute.MessageText, []byte("hello")) // Append, through the Hub
	if err != nil {
		log.Printf("not stored: %v", err) // Redis down: nobody got it
		return
	}
	entries, head, _ := h.History(ctx, "lobby", hub.Position{Epoch: pos.Epoch, Offset: pos.Offset - 1}, 10)
	log.Printf("%d kept after %v; the room is at %v", len(entries), pos, head)
}
