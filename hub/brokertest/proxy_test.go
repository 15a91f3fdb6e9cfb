package brokertest_test

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"

	"github.com/nexio-go/nexio/hub/brokertest"
	"github.com/nexio-go/nexio/internal/testutil"
)

// echoServer echoes every line back, until the test ends.
func echoServer(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	testutil.NoErr(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return l.Addr().String()
}

func roundTrip(c net.Conn, r *bufio.Reader) error {
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	_, err := r.ReadString('\n')
	return err
}

// A proxy passes bytes both ways; Cut ends its connections and refuses
// new ones until Restore.
func TestProxyCutAndRestore(t *testing.T) {
	p := brokertest.NewProxy(t, echoServer(t))
	c, err := net.Dial("tcp", p.Addr())
	testutil.NoErr(t, err)
	defer c.Close()
	r := bufio.NewReader(c)
	testutil.NoErr(t, roundTrip(c, r))

	p.Cut()
	testutil.Check(t, roundTrip(c, r) != nil, "a connection through a cut proxy still works")
	c2, err := net.Dial("tcp", p.Addr())
	if err == nil {
		testutil.Check(t, roundTrip(c2, bufio.NewReader(c2)) != nil, "a new connection through a cut proxy works")
		c2.Close()
	}

	p.Restore()
	c3, err := net.Dial("tcp", p.Addr())
	testutil.NoErr(t, err)
	defer c3.Close()
	testutil.NoErr(t, roundTrip(c3, bufio.NewReader(c3)))
}
