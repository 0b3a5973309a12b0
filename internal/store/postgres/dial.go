package postgres

import (
	"context"
	"net"
	"sync/atomic"
	"time"

	"github.com/lib/pq"
)

// boundedDialer is lib/pq's dialer with every connection wrapped in a
// boundedConn.
type boundedDialer struct {
	d       net.Dialer
	timeout time.Duration
}

var (
	_ pq.Dialer        = boundedDialer{}
	_ pq.DialerContext = boundedDialer{}
)

func (b boundedDialer) Dial(network, address string) (net.Conn, error) {
	return b.DialContext(context.Background(), network, address)
}

func (b boundedDialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return b.DialContext(ctx, network, address)
}

func (b boundedDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := b.d.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	return &boundedConn{Conn: c, timeout: b.timeout}, nil
}

// boundedConn gives up on a server that stops answering: every Read and
// Write must make progress within timeout, or it fails with a timeout
// (a *net.OpError, which lib/pq treats as a broken connection and
// translate as store.ErrUnavailable). lib/pq only reads while it waits for
// an answer, so an idle pooled connection never times out.
//
// lib/pq sets a deadline of its own while connecting (connect_timeout);
// the nearer of the two applies.
type boundedConn struct {
	net.Conn
	timeout  time.Duration
	deadline atomic.Int64 // Unix nanoseconds set by SetDeadline; 0 for none
}

func (c *boundedConn) Read(p []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(c.next()); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *boundedConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(c.next()); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// SetDeadline records the caller's deadline and applies it.
func (c *boundedConn) SetDeadline(t time.Time) error {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	c.deadline.Store(ns)
	return c.Conn.SetDeadline(t)
}

// next is the deadline of the next Read or Write.
func (c *boundedConn) next() time.Time {
	d := time.Now().Add(c.timeout)
	if ns := c.deadline.Load(); ns != 0 && ns < d.UnixNano() {
		return time.Unix(0, ns)
	}
	return d
}
