package dbtest

import (
	"encoding/binary"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

// Proxy is a TCP proxy in front of the test database. Down cuts every
// connection and refuses new ones until Up: the database "goes away" for
// one tokend without disturbing other tests that share the server.
// SetMode makes it fail in other ways a network or a server can.
type Proxy struct {
	t      testing.TB
	target string
	mu     sync.Mutex
	cond   *sync.Cond // broadcast when mode or closed changes
	mode   Mode
	ln     net.Listener
	addr   string
	conns  map[net.Conn]bool
	closed bool
}

// Mode is how the proxy treats connections.
type Mode int

const (
	// Forward passes bytes both ways (the default).
	Forward Mode = iota
	// Reset resets (TCP RST) every open connection and every new one
	// right after accepting it.
	Reset
	// BlackHole accepts connections but passes nothing either way, on new
	// and open connections alike, as a partition or a hung server does.
	// What was held back is delivered when the mode changes back.
	BlackHole
	// CorruptStartup forwards new connections with a stray byte after the
	// terminator of the client's startup packet, so PostgreSQL itself
	// refuses them with SQLSTATE 08P01 (protocol violation: "expected
	// terminator as last byte"). Open connections are not affected. It
	// needs sslmode=disable (the startup packet comes first).
	CorruptStartup
)

// StartProxy proxies to the host of databaseURL and returns the proxy and
// the URL to connect through it.
func StartProxy(t testing.TB, databaseURL string) (*Proxy, string) {
	t.Helper()
	u, err := url.Parse(databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{t: t, target: u.Host, conns: map[net.Conn]bool{}}
	p.cond = sync.NewCond(&p.mu)
	p.listen("127.0.0.1:0")
	t.Cleanup(func() {
		p.mu.Lock()
		p.closed = true
		p.cond.Broadcast()
		p.mu.Unlock()
		p.Down()
	})
	u.Host = p.addr
	return p, u.String()
}

func (p *Proxy) listen(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		p.t.Fatalf("proxy listen %s: %v", addr, err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go p.accept(ln)
}

func (p *Proxy) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		mode := p.mode
		p.mu.Unlock()
		switch mode {
		case Reset:
			reset(c)
			continue
		case BlackHole:
			// Hold the connection open and never answer; whatever the
			// client sends is dropped.
			p.track(c)
			go func() {
				_, _ = io.Copy(io.Discard, c)
				c.Close()
				p.untrack(c)
			}()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.track(c, up)
		if mode == CorruptStartup {
			go func() {
				if corruptStartup(up, c) {
					p.pipe(up, c)
				} else {
					up.Close()
					c.Close()
					p.untrack(c, up)
				}
			}()
		} else {
			go p.pipe(up, c)
		}
		go p.pipe(c, up)
	}
}

func (p *Proxy) track(cs ...net.Conn) {
	p.mu.Lock()
	for _, c := range cs {
		p.conns[c] = true
	}
	p.mu.Unlock()
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	for _, c := range cs {
		delete(p.conns, c)
	}
	p.mu.Unlock()
}

// pipe copies src to dst, holding each chunk back while the proxy is a
// black hole.
func (p *Proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.pass() {
				break
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
	p.untrack(dst, src)
}

// pass waits while the proxy is a black hole and reports whether to go on.
func (p *Proxy) pass() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.mode == BlackHole && !p.closed {
		p.cond.Wait()
	}
	return !p.closed
}

// corruptStartup reads the client's startup packet from src and writes it
// to dst one byte longer: a NUL after the terminator.
func corruptStartup(dst, src net.Conn) bool {
	var hdr [4]byte
	if _, err := io.ReadFull(src, hdr[:]); err != nil {
		return false
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < 8 || n > 10000 {
		return false
	}
	pkt := make([]byte, n+1)
	if _, err := io.ReadFull(src, pkt[4:n]); err != nil {
		return false
	}
	binary.BigEndian.PutUint32(pkt, n+1)
	_, err := dst.Write(pkt)
	return err == nil
}

// reset closes c with a TCP RST instead of a FIN.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

// SetMode changes how the proxy treats connections. Reset also resets
// every open connection at once.
func (p *Proxy) SetMode(m Mode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
	p.cond.Broadcast()
	if m == Reset {
		for c := range p.conns {
			reset(c)
		}
	}
}

// Down closes the listener and every proxied connection.
func (p *Proxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
}

// Up listens again on the same address.
func (p *Proxy) Up() {
	p.mu.Lock()
	addr, closed := p.addr, p.closed
	p.mu.Unlock()
	if !closed {
		p.listen(addr)
	}
}
