package tcp

import (
	"net"
	"sync"
	"testing"
	"time"

	"meshd.dev/meshd/transports/link"
)

// queuedConn is one end of a net.Pipe whose writes are queued and written
// in order by a goroutine, as a socket buffer would take them: both sides
// of the handshake write first, which an unbuffered pipe cannot carry.
// Everything is in memory, so it runs in a synctest bubble on virtual time
// (read and write deadlines included).
type queuedConn struct {
	net.Conn
	mu     sync.Mutex
	closed bool
	q      chan []byte
}

func newQueuedConn(c net.Conn) *queuedConn {
	qc := &queuedConn{Conn: c, q: make(chan []byte, 64)}
	go func() {
		for b := range qc.q {
			if _, err := c.Write(b); err != nil {
				c.Close()
			}
		}
	}()
	return qc
}

func (qc *queuedConn) Write(b []byte) (int, error) {
	qc.mu.Lock()
	defer qc.mu.Unlock()
	if qc.closed {
		return 0, net.ErrClosed
	}
	qc.q <- append([]byte(nil), b...)
	return len(b), nil
}

func (qc *queuedConn) Close() error {
	qc.mu.Lock()
	defer qc.mu.Unlock()
	if !qc.closed {
		qc.closed = true
		close(qc.q)
	}
	return qc.Conn.Close()
}

// pipeLinks returns the two ends of a link over an in-memory pipe, with
// the given limits (b's are a's unless given). Call it inside a synctest bubble; close both ends and
// wait for them before the bubble ends.
func pipeLinks(t *testing.T, lim limits, limB ...limits) (a, b *conn) {
	t.Helper()
	ca, cb := net.Pipe()
	qa, qb := newQueuedConn(ca), newQueuedConn(cb)
	ida, idb := newIdentity(t), newIdentity(t)
	ra, rb := goHandshake(qa, ida, true, idb.Address()), goHandshake(qb, idb, false, ida.Address())
	ha, hb := <-ra, <-rb
	if ha.err != nil || hb.err != nil {
		t.Fatalf("handshake: %v / %v", ha.err, hb.err)
	}
	_ = qa.SetDeadline(time.Time{})
	_ = qb.SetDeadline(time.Time{})
	info := func(s *session, out bool) link.Info {
		return link.Info{Kind: link.KindTCP, Name: "pipe", MTU: MaxFrameSize, Peer: s.peer, Outbound: out}
	}
	lb := lim
	if len(limB) > 0 {
		lb = limB[0]
	}
	return newConn(qa, ha.s, info(ha.s, true), lim), newConn(qb, hb.s, info(hb.s, false), lb)
}
